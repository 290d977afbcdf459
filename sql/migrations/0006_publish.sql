-- Published DTSEN versions (write-audit-publish): a version is built as CANDIDATE, audited, then
-- PUBLISHED or BLOCKED. Its ranking and recipients are kept per version, one partition each, so
-- a published version is immutable and program teams can query any version.
CREATE SCHEMA IF NOT EXISTS publish;

CREATE TABLE publish.version (
    version          integer PRIMARY KEY CHECK (version > 0),
    round_seq        smallint NOT NULL REFERENCES ingest.round,
    status           text NOT NULL DEFAULT 'CANDIDATE'
                     CHECK (status IN ('CANDIDATE', 'BLOCKED', 'APPROVED', 'PUBLISHED', 'SUPERSEDED')),
    previous_version integer REFERENCES publish.version,
    ranking_model    jsonb,           -- name + parameters hash
    counts           jsonb,
    programs         jsonb,
    manifest         jsonb,           -- the published manifest.json, verbatim
    audit            jsonb,           -- audit suite summary (drift by regency and program)
    approved_by      text,
    approval_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    path             text
);
-- At most one version per round is ever published.
CREATE UNIQUE INDEX version_one_published_per_round ON publish.version (round_seq)
    WHERE status IN ('PUBLISHED', 'SUPERSEDED');

CREATE TABLE publish.family_rank (
    version            integer NOT NULL,
    no_kk              bigint NOT NULL,
    kode_wilayah       text NOT NULL,
    jumlah_anggota     smallint NOT NULL,
    skor_kesejahteraan double precision NOT NULL,  -- predicted or measured log per-capita expenditure
    skor_sumber        text NOT NULL CHECK (skor_sumber IN ('PMT', 'BPS')),
    desil              smallint NOT NULL CHECK (desil BETWEEN 1 AND 10),
    PRIMARY KEY (version, no_kk)
) PARTITION BY LIST (version);

CREATE TABLE publish.recipient (
    version      integer NOT NULL,
    program      text NOT NULL,
    nik          bigint NOT NULL,
    no_kk        bigint NOT NULL,
    kode_wilayah text NOT NULL,
    desil        smallint NOT NULL,
    PRIMARY KEY (version, program, nik)
) PARTITION BY LIST (version);

CREATE FUNCTION publish.ensure_version_partitions(p_version integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS publish.%I PARTITION OF publish.family_rank FOR VALUES IN (%s)',
                   'family_rank_v' || p_version, p_version);
    EXECUTE format('CREATE TABLE IF NOT EXISTS publish.%I PARTITION OF publish.recipient FOR VALUES IN (%s)',
                   'recipient_v' || p_version, p_version);
END $$;
