-- What program rules read (dtsen.programs): one row per member of a version. {{ members }} is the
-- version's members, or one family's (the explain command); the same text serves both. `families`
-- is the versions' family rows (publish.keluarga; a candidate being built passes its new rows).
-- {{ components }} are the programs' family components (dtsen.programs.Component): a family has a
-- component when one of its members meets its condition; `komponen` lists them in config order.
-- Parameters: %(version)s, %(reference_date)s, %(snapshot_pk)s.

-- name: context
SELECT a.nik, a.no_kk, k.kode_wilayah, k.desil, a.hubungan_keluarga, a.status_sekolah,
       (extract(year FROM age(%(reference_date)s::date, a.tanggal_lahir)))::int AS umur,
       coalesce(fam.pekerjaan_keluarga, '{}') AS pekerjaan_keluarga, fam.komponen, k.groundcheck_hasil,
       coalesce(d.status_hidup = 'MENINGGAL', false) AS meninggal
FROM {{ members }} a
JOIN {{ families | default("publish.keluarga") }} k ON k.version = a.version AND k.no_kk = a.no_kk
JOIN (SELECT x.no_kk, array_agg(DISTINCT x.status_pekerjaan) FILTER (WHERE x.status_pekerjaan IS NOT NULL)
             AS pekerjaan_keluarga,
             array_remove(ARRAY[{% for c in components %}CASE WHEN bool_or({{ c.sql }}) THEN '{{ c.id }}' END, {% endfor %}NULL], NULL)
             AS komponen
      FROM {{ members }} x
      {%- if components %}
      CROSS JOIN LATERAL (SELECT (extract(year FROM age(%(reference_date)s::date, x.tanggal_lahir)))::int AS umur) u
      {%- endif %}
      GROUP BY x.no_kk) fam ON fam.no_kk = a.no_kk
LEFT JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d ON d.nik = a.nik
