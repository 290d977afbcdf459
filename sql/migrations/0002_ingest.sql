-- Rounds, submissions and their files: the idempotency keys of every later step.
CREATE SCHEMA IF NOT EXISTS ingest;

-- round_seq is a small surrogate so history rows in the registry stay narrow (2 bytes, not text).
CREATE TABLE ingest.round (
    round_seq   smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    round_id    text NOT NULL UNIQUE CHECK (round_id ~ '^[0-9]{4}-Q[1-4]$'),
    status      text NOT NULL DEFAULT 'OPEN'
                CHECK (status IN ('OPEN', 'VALIDATED', 'MERGED', 'PUBLISHED', 'FAILED')),
    reference_date date,            -- ages for program rules are computed on this date
    created_at  timestamptz NOT NULL DEFAULT now(),
    merged_at   timestamptz,
    published_version integer
);

-- Civil-registry extracts; the latest loaded snapshot is the authority on NIK existence and death.
CREATE TABLE ingest.dukcapil_snapshot (
    snapshot_pk   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    snapshot_date date NOT NULL UNIQUE,
    sha256        text NOT NULL,
    size_bytes    bigint NOT NULL,
    rows_received bigint,
    raw_path      text,
    loaded_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ingest.submission (
    submission_pk  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    round_seq      smallint NOT NULL REFERENCES ingest.round,
    source         text NOT NULL CHECK (source IN ('pemda', 'bps', 'kemensos')),
    submission_id  text NOT NULL CHECK (submission_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    kode_wilayah   text,            -- pemda: the 4-digit regency it answers for
    submitted_at   timestamptz,
    submitted_by   text,
    manifest       jsonb,           -- as received, for audit
    -- sha256 over the sorted (file name, file sha256) pairs: byte-identical resubmissions share it
    fileset_sha256 text,
    status         text NOT NULL DEFAULT 'RECEIVED'
                   CHECK (status IN ('RECEIVED', 'REJECTED', 'STAGED', 'VALIDATED', 'MERGED', 'PARTIAL')),
    reason_code    text,            -- submission-level rejection, if any
    detail         text,            -- operator-facing explanation (never personal data)
    duplicate_of   bigint REFERENCES ingest.submission,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (round_seq, source, submission_id)
);
CREATE INDEX submission_fileset_idx ON ingest.submission (fileset_sha256);

CREATE TABLE ingest.submission_file (
    submission_pk bigint NOT NULL REFERENCES ingest.submission ON DELETE CASCADE,
    file_name     text NOT NULL,
    file_kind     text NOT NULL,
    sha256        text,
    size_bytes    bigint,
    raw_path      text,             -- the kept copy of the bytes, content-addressed by sha256
    rows_received bigint,
    status        text NOT NULL DEFAULT 'RECEIVED'
                  CHECK (status IN ('RECEIVED', 'REJECTED', 'STAGED', 'VALIDATED')),
    reason_code   text,
    detail        text,
    warnings      jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (submission_pk, file_name)
);
