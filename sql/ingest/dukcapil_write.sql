-- An extract's differences written to the reference, once sql/ingest/dukcapil_sort.sql sorted them
-- and the plausibility check let them through. Parameters: snapshot_pk, base_pk (NULL for the first).

-- name: record_changes
-- One change row per NIK (identical copies after the first are that row, not unusable lines); a
-- conflicting NIK is recorded once, CONFLICTING, also for the first extract (validation reads it).
INSERT INTO ref.dukcapil_change (snapshot_pk, line_no, nik, change, nama, jenis_kelamin, tanggal_lahir,
                                 status_hidup, tanggal_meninggal)
SELECT %(snapshot_pk)s, d.line_no, d.nik,
       CASE WHEN u.line_no IS NOT NULL THEN CASE WHEN d.was_current THEN 'CHANGED' ELSE 'NEW' END
            WHEN d.rec IS NULL THEN 'VANISHED'
            ELSE 'UNUSABLE' END,
       u.nama, u.jenis_kelamin, u.tanggal_lahir, u.status_hidup, u.tanggal_meninggal
FROM scratch_dukcapil.dk_diff d
LEFT JOIN scratch_dukcapil.dk_usable u ON u.line_no = d.line_no
WHERE NOT d.blank AND %(base_pk)s::int IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM scratch_dukcapil.dk_conflict c WHERE c.nik = d.nik)
  AND NOT (u.line_no IS NULL AND d.rec IS NOT NULL
           AND EXISTS (SELECT 1 FROM scratch_dukcapil.dk_usable o WHERE o.nik = d.nik AND o.line_no < d.line_no))
UNION ALL
SELECT %(snapshot_pk)s, c.line_no, c.nik, 'CONFLICTING', NULL, NULL, NULL, NULL, NULL
FROM scratch_dukcapil.dk_conflict c;

-- name: close_ranges
-- planner: probe
-- A few NIKs of the reference change per extract: each is closed through the current-NIK index. A
-- conflicting NIK's record is kept as it was.
UPDATE ref.dukcapil r SET valid_to = %(snapshot_pk)s
FROM (SELECT DISTINCT nik FROM scratch_dukcapil.dk_diff d
      WHERE was_current AND NOT EXISTS (SELECT 1 FROM scratch_dukcapil.dk_conflict c WHERE c.nik = d.nik)) d
WHERE r.nik = d.nik AND r.valid_to IS NULL;

-- name: open_ranges
INSERT INTO ref.dukcapil (nik, valid_from, no_kk, nama, jenis_kelamin, tanggal_lahir, kode_wilayah, status_hidup,
                          tanggal_meninggal, row_hash)
SELECT nik, %(snapshot_pk)s, no_kk, nama, jenis_kelamin, tanggal_lahir, kode_wilayah, status_hidup,
       tanggal_meninggal, row_hash
FROM scratch_dukcapil.dk_usable;
