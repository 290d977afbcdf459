-- What a round's merge changed (counts per kind of change, rows lost to conflicts, seconds per step),
-- kept with the round: reports and the data-ops cockpit read it instead of recounting the registry.
ALTER TABLE ingest.round ADD COLUMN merge_summary jsonb;
