-- A Dukcapil extract compared with the current reference (ref.dukcapil), by NIK and row hash, while
-- its records are still as COPY took them (scratch_dukcapil.raw_file): an unchanged line is read once, keyed
-- and hashed, and goes no further. Only the lines that differ are staged, validated and typed; the
-- reference's ranges of changed, vanished and now unusable NIKs are closed, new and changed usable
-- rows open new ranges, and every difference is recorded in ref.dukcapil_change (what the merge
-- reads). The first extract has no reference: every line differs, and its change rows are not
-- recorded (the first merge reads the whole reference).
-- Fragments (SQL over a record `r` of the raw table, from dtsen.ingest.stage.RawRecords): line_no,
-- has_value (not blank), nik (the trimmed NIK), raw_fields (the eight contract fields as delivered), header_line.
-- Parameters: snapshot_pk, base_pk (the snapshot the reference stands at, NULL for the first).

{#- Each record of the extract keyed and hashed (scratch_dukcapil.dk_keyed). -#}
{% set keyed %}
    -- a record with a NIK is data: the whole-record blank test runs only for the others
    SELECT r.rec, r.line_no, ({{ nik }} IS NOT NULL OR {{ has_value }}) AS is_data, ref.nik_key({{ nik }}) AS nik_key,
           ref.dukcapil_row_hash({{ raw_fields }}) AS row_hash
    FROM (SELECT {{ line_no }} AS line_no, * FROM scratch_dukcapil.raw_file) r
    WHERE r.rec > {{ header_line }}
{%- endset %}

-- name: keyed
-- planner: parallel
-- One pass over the extract: each record keyed and hashed (the costly part, which parallel workers
-- share), kept in a narrow table the comparison and its slow path then read.
CREATE UNLOGGED TABLE scratch_dukcapil.dk_keyed AS {{ keyed }};
ANALYZE scratch_dukcapil.dk_keyed;

-- name: diff
-- The keyed extract against the current reference: one full join on the narrow keys gives the lines
-- that differ (or match no current NIK) and the current NIKs no line matched (vanished). PostgreSQL
-- 15 runs a full join in one process; the costly part, keying and hashing the lines, was shared above.
-- A blank record is kept as a difference only to be counted.
CREATE UNLOGGED TABLE scratch_dukcapil.dk_diff AS
SELECT e.rec, e.line_no, NOT coalesce(e.is_data, true) AS blank, coalesce(e.nik_key, c.nik) AS nik,
       c.nik IS NOT NULL AS was_current, e.row_hash
FROM scratch_dukcapil.dk_keyed e
FULL JOIN (SELECT nik, row_hash FROM ref.dukcapil WHERE valid_to IS NULL) c ON c.nik = e.nik_key
WHERE e.rec IS NULL OR NOT e.is_data OR c.nik IS NULL OR e.row_hash <> c.row_hash;

-- name: counts
-- Whole-extract checks as aggregates: a current NIK listed more than once shows as more matched
-- lines than current NIKs matched (then `duplicated_lines` finds which).
SELECT count(*) FILTER (WHERE blank) AS blank,
       count(*) FILTER (WHERE rec IS NULL) AS vanished,
       count(*) FILTER (WHERE rec IS NOT NULL AND NOT blank AND NOT was_current) AS unmatched
FROM scratch_dukcapil.dk_diff;

-- name: duplicated_lines
-- Every line of a NIK listed more than once with different content, added to the differences (a slow
-- path: a grouping of the whole keyed extract, taken only when the counts show a current
-- NIK matched by more than one line). Copies identical to each other are one row: when they equal the
-- reference too, nothing about that NIK differs.
INSERT INTO scratch_dukcapil.dk_diff (rec, line_no, blank, nik, was_current, row_hash)
SELECT e.rec, e.line_no, false, e.nik_key, true, e.row_hash
FROM (SELECT k.*, min(k.row_hash) OVER w AS lowest, max(k.row_hash) OVER w AS highest
      FROM scratch_dukcapil.dk_keyed k
      WHERE k.is_data AND k.nik_key IS NOT NULL
      WINDOW w AS (PARTITION BY k.nik_key)) e
WHERE e.lowest <> e.highest
  AND NOT EXISTS (SELECT 1 FROM scratch_dukcapil.dk_diff d WHERE d.rec = e.rec);
