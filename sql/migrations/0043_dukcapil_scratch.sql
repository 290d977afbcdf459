-- The Dukcapil comparison's scratch tables (issue 27): the extract as COPY took it, its lines that
-- differ from the reference, the NIKs it contradicts itself on and its usable lines are unlogged
-- tables of this schema rather than temporary ones, so PostgreSQL may plan the statements that read
-- them in parallel (it never does over a temporary table). The load creates them in its transaction
-- and drops them before it commits, so no other session ever sees them; a failed or held load takes
-- them with its rollback. The load's lock on ingest.dukcapil_snapshot keeps two loads from creating
-- them at once.
CREATE SCHEMA scratch_dukcapil;
GRANT USAGE, CREATE ON SCHEMA scratch_dukcapil TO dtsen_round;
