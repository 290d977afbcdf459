-- The audit's scratch tables (issue 27): with more than one session, each computes its share of the
-- members and families checks into an unlogged table of this schema and commits it, so the audit's
-- own transaction can read them all; that transaction drops them before it commits. Tables a crash
-- leaves behind are dropped by the next audit, under the publication lock.
CREATE SCHEMA scratch_audit;
GRANT USAGE, CREATE ON SCHEMA scratch_audit TO dtsen_round;
