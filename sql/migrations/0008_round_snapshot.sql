-- Each round is checked against one Dukcapil snapshot (the latest on or before its cut-off); record
-- which, so validation and merge of the round use the same civil-registry state even if a newer
-- snapshot arrives meanwhile.
ALTER TABLE ingest.round ADD COLUMN dukcapil_snapshot_pk integer REFERENCES ingest.dukcapil_snapshot;
