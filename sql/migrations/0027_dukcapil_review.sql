-- A civil-registry extract is checked before it may change the reference: against its sender's
-- manifest (row count, checksum; optional, additive to the contract) and for plausibility (how many
-- current NIKs it would remove, overall and per regency). An implausible extract is held: nothing of
-- it is applied, and the round waits until a person decides (dtsen.ingest.dukcapil_review).

-- One extract (date folder and exact bytes) held for a decision, with what the check found.
CREATE TABLE ingest.dukcapil_review (
    review_pk     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    snapshot_date date NOT NULL,
    sha256        text NOT NULL,
    found         jsonb NOT NULL,  -- counts and regency codes only (never a NIK)
    status        text NOT NULL DEFAULT 'WAITING' CHECK (status IN ('WAITING', 'APPLY', 'KEEP_REFERENCE')),
    held_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (snapshot_date, sha256)
);

-- Every answer on a held extract, kept (including those refused and timeouts).
CREATE TABLE ingest.dukcapil_decision (
    decision_pk     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    review_pk       integer NOT NULL REFERENCES ingest.dukcapil_review,
    outcome         text NOT NULL CHECK (outcome IN ('APPLY', 'KEEP_REFERENCE', 'TIMED_OUT', 'REFUSED')),
    decided_by      text CHECK (decided_by IS NOT NULL OR outcome = 'TIMED_OUT'),
    channel         text NOT NULL CHECK (channel IN ('airflow-ui', 'cli')),
    reason          text,
    refused_because text,
    dag_run_id      text,
    decided_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'REFUSED') = (refused_because IS NOT NULL))
);
CREATE INDEX dukcapil_decision_review ON ingest.dukcapil_decision (review_pk, decided_at);

-- The round waits on this review (NULL: it waits on none); the snapshot records the sender's manifest
-- and the decision under which it was applied.
ALTER TABLE ingest.round ADD COLUMN dukcapil_review_pk integer REFERENCES ingest.dukcapil_review;
ALTER TABLE ingest.dukcapil_snapshot
    ADD COLUMN manifest jsonb,
    ADD COLUMN review_pk integer REFERENCES ingest.dukcapil_review;

-- A NIK listed more than once with different content is an extract defect: its reference record is
-- kept as it was, and the change is recorded once per NIK as CONFLICTING (what validation reads).
ALTER TABLE ref.dukcapil_change DROP CONSTRAINT dukcapil_change_change_check;
ALTER TABLE ref.dukcapil_change
    ADD CONSTRAINT dukcapil_change_change_check
        CHECK (change IN ('NEW', 'CHANGED', 'VANISHED', 'UNUSABLE', 'CONFLICTING'));
