-- The candidate build's scratch tables (issue 27): what a version will hold is worked out in
-- unlogged tables of this schema rather than temporary ones, so PostgreSQL may plan their queries in
-- parallel (it never does over a temporary table), and so the sessions that write the spans in
-- parallel can read them. Only the build writes here (under the publication lock); a build clears
-- what an interrupted one left.
CREATE SCHEMA scratch_candidate;
GRANT USAGE, CREATE ON SCHEMA scratch_candidate TO dtsen_round;
