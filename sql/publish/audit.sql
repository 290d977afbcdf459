-- Views the candidate-version audit (expectations/version_audit.json) runs on. A view cannot take
-- bound parameters, so dtsen.publish.audit renders these (psycopg's client-side binding): version,
-- previous (-1 when none), snapshot_pk (the round's Dukcapil snapshot, NULL when none), min_base.

-- name: members
SELECT a.nik, a.no_kk, k.no_kk AS keluarga_no_kk,
       coalesce((d.status_hidup = 'MENINGGAL')::int, 0) AS meninggal_menurut_dukcapil
FROM publish.anggota a
LEFT JOIN publish.keluarga k ON k.version = a.version AND k.no_kk = a.no_kk
LEFT JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d ON d.nik = a.nik
WHERE a.version = %(version)s

-- name: families
SELECT k.no_kk, k.desil, coalesce(h.jumlah_kepala, 0) AS jumlah_kepala
FROM publish.keluarga k
LEFT JOIN (SELECT no_kk, count(*) FILTER (WHERE hubungan_keluarga = 1) AS jumlah_kepala
           FROM publish.anggota WHERE version = %(version)s GROUP BY no_kk) h ON h.no_kk = k.no_kk
WHERE k.version = %(version)s

-- name: desil_shares
SELECT desil, sum(jumlah_anggota)::float8 / sum(sum(jumlah_anggota)) OVER () AS share
FROM publish.keluarga WHERE version = %(version)s
GROUP BY desil

-- Recipients added where they are now, removed where they were, per regency (first 4 digits of
-- kode_wilayah) and program, as shares of the current version's recipients there (at least min_base).
-- name: drift
WITH cur AS (SELECT program, nik, left(kode_wilayah, 4) AS kab FROM publish.recipient WHERE version = %(version)s),
prev AS (SELECT program, nik, left(kode_wilayah, 4) AS kab FROM publish.recipient WHERE version = %(previous)s),
added AS (SELECT c.program, c.kab, count(*) AS n FROM cur c
          WHERE NOT EXISTS (SELECT 1 FROM prev p WHERE p.program = c.program AND p.nik = c.nik) GROUP BY 1, 2),
removed AS (SELECT p.program, p.kab, count(*) AS n FROM prev p
            WHERE NOT EXISTS (SELECT 1 FROM cur c WHERE c.program = p.program AND c.nik = p.nik) GROUP BY 1, 2),
base AS (SELECT program, kab, count(*) AS n FROM prev GROUP BY 1, 2),
pairs AS (SELECT program, kab FROM base UNION SELECT program, kab FROM added UNION SELECT program, kab FROM removed)
SELECT k.kab AS kode_kabupaten, k.program, coalesce(b.n, 0) AS sebelumnya,
       coalesce(a.n, 0) AS ditambah, coalesce(r.n, 0) AS dikeluarkan,
       coalesce(a.n, 0)::float8 / greatest(coalesce(b.n, 0), %(min_base)s) AS added_share,
       coalesce(r.n, 0)::float8 / greatest(coalesce(b.n, 0), %(min_base)s) AS removed_share
FROM pairs k
LEFT JOIN base b ON b.program = k.program AND b.kab = k.kab
LEFT JOIN added a ON a.program = k.program AND a.kab = k.kab
LEFT JOIN removed r ON r.program = k.program AND r.kab = k.kab
WHERE %(previous)s > 0
