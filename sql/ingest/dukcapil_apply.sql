-- The differences found by sql/ingest/dukcapil_diff.sql (pg_temp.dk_diff), applied once the differing
-- lines are staged. Parameters: snapshot_pk, base_pk (NULL for the first extract). What was applied
-- is counted by sql/ingest/dukcapil_summary.sql.

-- name: usable
-- The differing lines that may enter the reference: a well-formed row whose NIK no other line holds.
CREATE TEMP TABLE dk_usable ON COMMIT DROP AS
SELECT d.line_no, d.nik, d.was_current, d.row_hash,
       CASE WHEN meta.kk_problem(s.no_kk) IS NULL THEN s.no_kk::bigint END AS no_kk,
       s.nama, s.jenis_kelamin::smallint AS jenis_kelamin, s.tanggal_lahir::date AS tanggal_lahir,
       s.kode_wilayah, s.status_hidup, meta.to_date_or_null(s.tanggal_meninggal) AS tanggal_meninggal
FROM (SELECT *, count(*) OVER (PARTITION BY nik) AS copies FROM dk_diff WHERE NOT blank AND rec IS NOT NULL) d
JOIN staging.dukcapil_penduduk s ON s.snapshot_pk = %(snapshot_pk)s AND s.line_no = d.line_no
WHERE d.copies = 1
  AND meta.nik_problem(s.nik) IS NULL
  AND s.nama IS NOT NULL
  AND s.jenis_kelamin IN ('1', '2')
  AND meta.is_iso_date(s.tanggal_lahir)
  AND s.status_hidup IN ('HIDUP', 'MENINGGAL');

-- name: analyze_usable
ANALYZE dk_usable;

-- name: record_changes
INSERT INTO ref.dukcapil_change (snapshot_pk, line_no, nik, change, nama, jenis_kelamin, tanggal_lahir,
                                 status_hidup, tanggal_meninggal)
SELECT %(snapshot_pk)s, d.line_no, d.nik,
       CASE WHEN u.line_no IS NOT NULL THEN CASE WHEN d.was_current THEN 'CHANGED' ELSE 'NEW' END
            WHEN d.rec IS NULL THEN 'VANISHED'
            ELSE 'UNUSABLE' END,
       u.nama, u.jenis_kelamin, u.tanggal_lahir, u.status_hidup, u.tanggal_meninggal
FROM dk_diff d
LEFT JOIN dk_usable u ON u.line_no = d.line_no
WHERE NOT d.blank AND %(base_pk)s::int IS NOT NULL;

-- name: close_ranges
-- planner: probe
-- A few NIKs of the reference change per extract: each is closed through the current-NIK index.
UPDATE ref.dukcapil r SET valid_to = %(snapshot_pk)s
FROM (SELECT DISTINCT nik FROM dk_diff WHERE was_current) d
WHERE r.nik = d.nik AND r.valid_to IS NULL;

-- name: open_ranges
INSERT INTO ref.dukcapil (nik, valid_from, no_kk, nama, jenis_kelamin, tanggal_lahir, kode_wilayah, status_hidup,
                          tanggal_meninggal, row_hash)
SELECT nik, %(snapshot_pk)s, no_kk, nama, jenis_kelamin, tanggal_lahir, kode_wilayah, status_hidup,
       tanggal_meninggal, row_hash
FROM dk_usable;
