-- The row rules of one staged file (a submission's file, or a Dukcapil snapshot) in one pass.
-- Every rule of the file kind's suite (expectations/*.json, read by dtsen.validate.rules) is
-- evaluated on every row of the file exactly once; the rows failing any rule are kept, with one flag
-- per rule. Great Expectations then judges those flags (one bundled query) and the row-level
-- rejections are written from them: the staged file is read once, however many rules it has.
-- Fragments (authored rules of one file kind, never outside input): batch (the file's rows, with
-- `_cutoff` and `_regency`), key (the file's record key), flags ("(predicate) IS TRUE AS rule_NN",
-- one per rule), any_failed ("(predicate) IS TRUE OR ..."), flag_values ("(f.rule_NN, 'CODE', 'field')", one per
-- rule), flag_columns ("rule_00, ..."). Parameters: the batch's (round_seq and submission_pk, or snapshot_pk), file_name.

-- name: drop_flags
DROP TABLE IF EXISTS row_flags;

-- name: flag_rows
-- A clean row (nearly all of them) evaluates each predicate once, in the WHERE; a failing row again
-- for its flags. No personal data but the key, which the rejections need.
CREATE TEMP TABLE row_flags ON COMMIT DROP AS
SELECT b.line_no, b.{{ key }} AS key_value, {{ flags }}
FROM ({{ batch }}) b
WHERE {{ any_failed }};

-- name: judged_flags
-- What Great Expectations sees: the flags only (a temporary view of this session).
SELECT {{ flag_columns }} FROM row_flags;

-- name: reject_flagged
INSERT INTO quality.rejection (round_seq, submission_pk, file_name, line_no, reason_code, field, key_value)
SELECT %(round_seq)s, %(submission_pk)s, %(file_name)s, f.line_no, v.code, v.field, f.key_value
FROM row_flags f
CROSS JOIN LATERAL (VALUES {{ flag_values }}) AS v(failed, code, field)
WHERE v.failed
ON CONFLICT DO NOTHING;
