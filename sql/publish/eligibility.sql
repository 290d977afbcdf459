-- What program rules read (dtsen.programs): one row per member of a version. {{ members }} is the
-- version's members, or one family's (the explain command); the same text serves both.
-- Parameters: %(version)s, %(reference_date)s, %(snapshot_pk)s.

-- name: context
SELECT a.nik, a.no_kk, k.kode_wilayah, k.desil, a.hubungan_keluarga, a.status_sekolah,
       (extract(year FROM age(%(reference_date)s::date, a.tanggal_lahir)))::int AS umur,
       coalesce(fam.pekerjaan_keluarga, '{}') AS pekerjaan_keluarga, k.groundcheck_hasil,
       coalesce(d.status_hidup = 'MENINGGAL', false) AS meninggal
FROM {{ members }} a
JOIN publish.keluarga k ON k.version = a.version AND k.no_kk = a.no_kk
JOIN (SELECT no_kk, array_agg(DISTINCT status_pekerjaan) FILTER (WHERE status_pekerjaan IS NOT NULL)
             AS pekerjaan_keluarga
      FROM {{ members }} x GROUP BY no_kk) fam ON fam.no_kk = a.no_kk
LEFT JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d ON d.nik = a.nik
