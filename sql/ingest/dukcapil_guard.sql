-- The plausibility check of an extract, on its sorted differences (sql/ingest/dukcapil_sort.sql),
-- before anything of it is applied: which current NIKs it would remove (absent, or present only in
-- unusable lines), in all and per regency. Parameters: snapshot_pk, regency_min_removed, regencies,
-- last_rec (the extract's last record).

-- name: removed
-- Current NIKs that would lose their reference record (a death or a correction is no removal; a
-- conflicting NIK keeps its record).
CREATE TEMP TABLE dk_removed ON COMMIT DROP AS
SELECT r.nik, left(r.kode_wilayah, 4) AS kode_kabupaten
FROM (SELECT nik FROM scratch_dukcapil.dk_diff WHERE was_current
      EXCEPT SELECT nik FROM scratch_dukcapil.dk_usable
      EXCEPT SELECT nik FROM scratch_dukcapil.dk_conflict) x
JOIN ref.dukcapil r ON r.nik = x.nik AND r.valid_to IS NULL;

-- name: removed_by_regency
-- Regencies with enough removed NIKs for their share to be judged.
SELECT coalesce(kode_kabupaten, '') AS kode_kabupaten, count(*) AS removed
FROM dk_removed
GROUP BY kode_kabupaten
HAVING count(*) >= %(regency_min_removed)s;

-- name: regency_sizes
-- The current reference NIKs of those regencies (one scan of the reference, only when one qualifies).
SELECT coalesce(left(kode_wilayah, 4), '') AS kode_kabupaten, count(*) AS current
FROM ref.dukcapil
WHERE valid_to IS NULL AND coalesce(left(kode_wilayah, 4), '') = ANY(%(regencies)s)
GROUP BY 1;

-- name: last_line_unusable
-- The extract's last record is a data line that cannot enter the reference (a file cut inside its
-- last line still has all its fields, only a short one).
SELECT EXISTS (SELECT 1 FROM scratch_dukcapil.dk_diff d
               WHERE d.rec = %(last_rec)s AND NOT d.blank
                 AND NOT EXISTS (SELECT 1 FROM scratch_dukcapil.dk_usable u WHERE u.line_no = d.line_no));
