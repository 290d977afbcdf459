-- The merge's scratch tables (issue 27): the accepted rows, the new state of each touched family and
-- person, the Dukcapil changes and what the round touched are worked out in unlogged tables of this
-- schema rather than temporary ones, so PostgreSQL may plan the statements that build and read them
-- in parallel (it never does over a temporary table). The merge creates them in its transaction and
-- drops them before it commits, so no other session ever sees them; a failed merge takes them with
-- its rollback. The merge's advisory lock keeps two merges from creating them at once.
CREATE SCHEMA scratch_merge;
GRANT USAGE, CREATE ON SCHEMA scratch_merge TO dtsen_round;
