-- Households' objections (sanggah) and proposals (usul) come in as a source of their own (issue 26,
-- item 2; an extension of the contract, docs/contract-extensions.md): aduan/<submission_id>/aduan.csv
-- from the channel that collects them. Staged as received like every file, partitioned by round.
ALTER TABLE ingest.submission DROP CONSTRAINT submission_source_check;
ALTER TABLE ingest.submission ADD CONSTRAINT submission_source_check
    CHECK (source IN ('pemda', 'bps', 'kemensos', 'aduan'));

CREATE TABLE staging.aduan (
    round_seq smallint NOT NULL, submission_pk bigint NOT NULL, line_no integer NOT NULL,
    jenis text, no_kk text, nik text, kode_wilayah text, program text, alasan text, keterangan text,
    tanggal_aduan text, pelapor_ref text,
    PRIMARY KEY (round_seq, submission_pk, line_no)
) PARTITION BY LIST (round_seq);

CREATE OR REPLACE FUNCTION staging.ensure_round_partitions(p_round_seq smallint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['pemda_keluarga', 'pemda_anggota', 'bps_keluarga', 'kemensos_groundcheck', 'aduan'] LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS staging.%I PARTITION OF staging.%I FOR VALUES IN (%s)',
                       t || '_r' || p_round_seq, t, p_round_seq);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION staging.drop_round_partitions(p_round_seq smallint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['pemda_keluarga', 'pemda_anggota', 'bps_keluarga', 'kemensos_groundcheck', 'aduan'] LOOP
        EXECUTE format('DROP TABLE IF EXISTS staging.%I', t || '_r' || p_round_seq);
    END LOOP;
END $$;

-- Rounds registered before this migration get their aduan partition now (a rerun of their steps
-- reads it).
SELECT staging.ensure_round_partitions(round_seq) FROM ingest.round;

-- A family's cases of every state, by its KK: the round's cases step asks, per flag, whether a closed
-- case of the family settled it (the live ones have their own unique index). Without it that question
-- read every case once per flag (17 s for 8,000 flags at 100k persons: bench/cases_scale.py).
CREATE INDEX verification_case_family ON cases.verification_case (no_kk);

-- Every accepted objection or proposal, and the case it joined: what the channel and the region are
-- told each round (the outcome file and callback) until its case closes. pelapor_ref is the channel's
-- opaque reference, never the reporter's identity. Identical objections of a round are each kept here
-- (each reporter is answered) and counted once as their case's reason (cases.case_reason.raised).
CREATE TABLE cases.aduan (
    submission_pk  bigint NOT NULL REFERENCES ingest.submission,
    line_no        integer NOT NULL,
    round_seq      smallint NOT NULL REFERENCES ingest.round,
    jenis          text NOT NULL CHECK (jenis IN ('SANGGAH', 'USUL')),
    alasan         text NOT NULL,
    program        text,
    no_kk          bigint NOT NULL,
    tanggal_aduan  date NOT NULL,
    pelapor_ref    text NOT NULL,
    id_kasus       bigint REFERENCES cases.verification_case,  -- NULL: no case (its type opens none; the
                                                              -- family left the registry that round)
    PRIMARY KEY (submission_pk, line_no)
);
CREATE INDEX aduan_case ON cases.aduan (id_kasus);
CREATE INDEX aduan_round ON cases.aduan (round_seq);

-- Each round's outcome file and callback of the aduan channel, written once (a rerun finds it).
CREATE TABLE cases.aduan_outcome_run (
    round_seq  smallint PRIMARY KEY REFERENCES ingest.round,
    summary    jsonb NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT ON cases.aduan, cases.aduan_outcome_run TO dtsen_round;
GRANT SELECT ON cases.aduan, cases.aduan_outcome_run TO dtsen_cockpit;
