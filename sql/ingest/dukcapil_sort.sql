-- The differences found by sql/ingest/dukcapil_diff.sql (scratch_dukcapil.dk_diff), applied once the differing
-- lines are staged. Parameters: snapshot_pk, base_pk (NULL for the first extract). `sort` runs first
-- (then the plausibility check, sql/ingest/dukcapil_guard.sql), `apply` only for an extract that may
-- change the reference. What was applied is counted by sql/ingest/dukcapil_summary.sql.

-- name: conflicting
-- A NIK listed more than once with different content: the extract contradicts itself, so neither copy
-- is trusted and the NIK's reference record stays as it was (an extract defect, reported to data ops).
CREATE UNLOGGED TABLE scratch_dukcapil.dk_conflict AS
SELECT nik, min(line_no) AS line_no, count(*) AS copies
FROM scratch_dukcapil.dk_diff
WHERE NOT blank AND rec IS NOT NULL AND nik IS NOT NULL
GROUP BY nik
HAVING min(row_hash) <> max(row_hash);
ANALYZE scratch_dukcapil.dk_conflict;

-- name: usable
-- The differing lines that may enter the reference: a well-formed row of a NIK whose copies, if any,
-- are identical to it (the first copy stands for them all). The first copy is the line with no
-- earlier line of its NIK (an anti-join, not a window over all lines: the checks and casts of each
-- line may then run in parallel workers).
CREATE UNLOGGED TABLE scratch_dukcapil.dk_usable AS
SELECT d.line_no, d.nik, d.was_current, d.row_hash,
       CASE WHEN meta.kk_problem(s.no_kk) IS NULL THEN s.no_kk::bigint END AS no_kk,
       s.nama, s.jenis_kelamin::smallint AS jenis_kelamin, s.tanggal_lahir::date AS tanggal_lahir,
       s.kode_wilayah, s.status_hidup, meta.to_date_or_null(s.tanggal_meninggal) AS tanggal_meninggal
FROM scratch_dukcapil.dk_diff d
JOIN staging.dukcapil_penduduk s ON s.snapshot_pk = %(snapshot_pk)s AND s.line_no = d.line_no
WHERE NOT d.blank AND d.rec IS NOT NULL AND d.nik IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM scratch_dukcapil.dk_diff o
                  WHERE o.nik = d.nik AND o.line_no < d.line_no AND NOT o.blank AND o.rec IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM scratch_dukcapil.dk_conflict c WHERE c.nik = d.nik)
  AND meta.nik_problem(s.nik) IS NULL
  AND s.nama IS NOT NULL
  AND s.jenis_kelamin IN ('1', '2')
  AND meta.is_iso_date(s.tanggal_lahir)
  AND s.status_hidup IN ('HIDUP', 'MENINGGAL');

-- name: analyze_usable
ANALYZE scratch_dukcapil.dk_usable;
