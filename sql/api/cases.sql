-- A field team's work list (src/dtsen/api/routes/cases.py): the open cases (OPEN, ASSIGNED) of its
-- regions, the most urgent first, each with its reasons and its family as the current version holds
-- it (address, members). Parameters: %(regions)s (code prefixes), %(version)s, %(after)s (paging by
-- id_kasus within the order), %(size)s, %(id_kasus)s (NULL: all).

-- name: cases
SELECT c.id_kasus, c.case_type, c.no_kk, c.kode_wilayah, c.priority, c.due_date, c.state, c.assigned_to,
       (SELECT json_agg(json_build_object('origin', r.origin, 'detail', r.detail, 'raised', r.raised) ORDER BY r.origin, r.detail)
        FROM cases.case_reason r WHERE r.id_kasus = c.id_kasus) AS reasons
FROM cases.verification_case c
WHERE c.state IN ('OPEN', 'ASSIGNED')
  AND EXISTS (SELECT 1 FROM unnest(%(regions)s::text[]) p WHERE starts_with(c.kode_wilayah, p))
  AND (%(id_kasus)s::bigint IS NULL OR c.id_kasus = %(id_kasus)s)
  AND c.id_kasus > %(after)s
ORDER BY c.id_kasus
LIMIT %(size)s;

-- name: families
SELECT k.no_kk, k.alamat, k.kode_wilayah, k.desil
FROM publish.keluarga_span k
WHERE k.no_kk = ANY(%(families)s) AND k.valid_from <= %(version)s AND coalesce(k.valid_to, 2147483647) > %(version)s;

-- name: members
SELECT a.no_kk, a.nik, a.nama, a.jenis_kelamin, a.tanggal_lahir, a.hubungan_keluarga
FROM publish.anggota_span a
WHERE a.no_kk = ANY(%(families)s) AND a.valid_from <= %(version)s AND coalesce(a.valid_to, 2147483647) > %(version)s
ORDER BY a.no_kk, a.hubungan_keluarga, a.nik;
