-- Great Expectations results of each Dukcapil snapshot (the civil registry is not a submission, but
-- data ops need to see its quality: malformed or duplicated NIKs in it weaken every NIK check).
CREATE TABLE quality.snapshot_suite_result (
    snapshot_pk integer NOT NULL REFERENCES ingest.dukcapil_snapshot ON DELETE CASCADE,
    suite_name  text NOT NULL,
    success     boolean NOT NULL,
    evaluated   integer NOT NULL,
    failed      integer NOT NULL,
    result      jsonb NOT NULL,   -- counts per rule only, no values
    run_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (snapshot_pk, suite_name)
);
