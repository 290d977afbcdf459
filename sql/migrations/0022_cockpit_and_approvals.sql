-- The data-ops cockpit reads per-round and per-version summaries, never the registry: each
-- submission's (and refused entry's) ringkasan.json is kept beside it as written to the region.
ALTER TABLE ingest.submission ADD COLUMN ringkasan jsonb;
ALTER TABLE ingest.refused_entry ADD COLUMN ringkasan jsonb;

-- Every decision on a blocked candidate, append-only: who (NULL when nobody answered in time), how
-- (the Airflow approval task, the trigger form, the command line), what and why. The version row
-- keeps the approval that let it through (approved_by, approval_reason, approved_at); a rejection
-- or a timeout leaves it BLOCKED and the current version current.
CREATE TABLE publish.approval_decision (
    decision_pk  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version      integer NOT NULL REFERENCES publish.version,
    outcome      text NOT NULL CHECK (outcome IN ('APPROVED', 'REJECTED', 'TIMED_OUT')),
    decided_by   text CHECK (decided_by IS NOT NULL OR outcome = 'TIMED_OUT'),
    channel      text NOT NULL CHECK (channel IN ('airflow-ui', 'airflow-trigger', 'cli')),
    reason       text,
    dag_run_id   text,
    decided_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX approval_decision_version ON publish.approval_decision (version, decided_at);

-- Approvals made before this table existed.
INSERT INTO publish.approval_decision (version, outcome, decided_by, channel, reason, decided_at)
SELECT version, 'APPROVED', approved_by,
       CASE WHEN approved_by = 'airflow-trigger' THEN 'airflow-trigger' ELSE 'cli' END,
       approval_reason, coalesce(approved_at, created_at)
FROM publish.version WHERE approved_by IS NOT NULL;
