-- Quality: reason codes (mirrored from the contract by the seed step), row-level rejections and
-- Great Expectations suite results per submission.
CREATE SCHEMA IF NOT EXISTS quality;

CREATE TABLE quality.reason_code (
    code    text PRIMARY KEY,
    level   text NOT NULL CHECK (level IN ('submission', 'file', 'row')),
    meaning text NOT NULL,   -- English, operators
    pesan   text NOT NULL    -- Indonesian, regional feedback
);

-- One row per (input row, reason). A row may carry several reasons; the pair is unique so a
-- re-run of validation cannot double-count. Partitioned by round like staging.
CREATE TABLE quality.rejection (
    round_seq     smallint NOT NULL,
    submission_pk bigint NOT NULL,
    file_name     text NOT NULL,
    line_no       integer NOT NULL,
    reason_code   text NOT NULL REFERENCES quality.reason_code,
    field         text NOT NULL DEFAULT '',
    key_value     text,       -- nik / no_kk as received; masked whenever it leaves the warehouse
    detail        text,       -- e.g. a masked NIK-repair suggestion
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_seq, submission_pk, file_name, line_no, reason_code, field)
) PARTITION BY LIST (round_seq);

CREATE TABLE quality.suite_result (
    submission_pk bigint NOT NULL REFERENCES ingest.submission ON DELETE CASCADE,
    file_kind     text NOT NULL,
    suite_name    text NOT NULL,
    success       boolean NOT NULL,
    evaluated     integer NOT NULL,
    failed        integer NOT NULL,
    result        jsonb NOT NULL,  -- GE's validation result with unexpected values stripped (no NIKs)
    run_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (submission_pk, file_kind, suite_name)
);

CREATE FUNCTION quality.ensure_round_partitions(p_round_seq smallint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS quality.%I PARTITION OF quality.rejection FOR VALUES IN (%s)',
                   'rejection_r' || p_round_seq, p_round_seq);
END $$;
