-- The files of a published version (contract section 3), each streamed by COPY into Parquet.
-- NIK and no_kk are written as 16-digit text, as in every other file of the contract.
-- Parameters: %(version)s, %(previous)s (-1 when none), %(program)s.

-- name: keluarga
SELECT no_kk::text AS no_kk, kode_wilayah, desil, skor_kesejahteraan, jumlah_anggota, skor_sumber,
       alamat, tanggal_pendataan, {% for a in family_attributes %}{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %},
       pengeluaran_per_kapita, tanggal_survei, groundcheck_tanggal, groundcheck_hasil
FROM publish.keluarga WHERE version = %(version)s
ORDER BY no_kk

-- name: anggota
SELECT nik::text AS nik, no_kk::text AS no_kk, nama, jenis_kelamin, tanggal_lahir, hubungan_keluarga,
       {% for a in member_attributes %}{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}
FROM publish.anggota WHERE version = %(version)s
ORDER BY no_kk, hubungan_keluarga, nik

-- name: program
SELECT nik::text AS nik, no_kk::text AS no_kk, kode_wilayah, desil, prioritas
FROM publish.recipient WHERE version = %(version)s AND program = %(program)s
ORDER BY kode_wilayah, no_kk, nik

-- A program with family components (PKH): the contract's columns, then the components the family
-- has, in config order, separated by ';' (an additive column).
-- name: program_components
SELECT nik::text AS nik, no_kk::text AS no_kk, kode_wilayah, desil, prioritas,
       array_to_string(komponen, ';') AS komponen
FROM publish.recipient WHERE version = %(version)s AND program = %(program)s
ORDER BY kode_wilayah, no_kk, nik

-- One row per person whose record differs from the previous version, with the most telling change:
-- ADDED, REMOVED, MOVED_FAMILY, DESIL_CHANGED, then ATTRIBUTES_CHANGED (the person's own or their
-- family's attributes); desil_before/desil_after are filled whenever the person is in that version.
-- Only persons whose spans, or whose family's, were opened or closed between the two versions can
-- differ: they are found by index, and compared.
-- name: perubahan
WITH changed_family AS (
    SELECT no_kk FROM publish.keluarga_span WHERE valid_from > %(previous)s AND valid_from <= %(version)s
    UNION SELECT no_kk FROM publish.keluarga_span WHERE valid_to > %(previous)s AND valid_to <= %(version)s
), changed AS (
    SELECT nik FROM publish.anggota_span WHERE valid_from > %(previous)s AND valid_from <= %(version)s
    UNION SELECT nik FROM publish.anggota_span WHERE valid_to > %(previous)s AND valid_to <= %(version)s
    UNION SELECT a.nik FROM changed_family f JOIN publish.anggota a ON a.version = %(version)s AND a.no_kk = f.no_kk
)
SELECT x.nik::text AS nik,
       CASE WHEN p.nik IS NULL THEN 'ADDED'
            WHEN c.nik IS NULL THEN 'REMOVED'
            WHEN c.no_kk <> p.no_kk THEN 'MOVED_FAMILY'
            WHEN ck.desil <> pk.desil THEN 'DESIL_CHANGED'
            ELSE 'ATTRIBUTES_CHANGED' END AS change,
       pk.desil AS desil_before, ck.desil AS desil_after
FROM changed x
LEFT JOIN publish.anggota c ON c.version = %(version)s AND c.nik = x.nik
LEFT JOIN publish.anggota p ON p.version = %(previous)s AND p.nik = x.nik
LEFT JOIN publish.keluarga ck ON ck.version = %(version)s AND ck.no_kk = c.no_kk
LEFT JOIN publish.keluarga pk ON pk.version = %(previous)s AND pk.no_kk = p.no_kk
WHERE (c.nik IS NOT NULL OR p.nik IS NOT NULL)
  AND (p.nik IS NULL OR c.nik IS NULL OR c.no_kk <> p.no_kk OR ck.desil <> pk.desil
   OR (c.nama, c.jenis_kelamin, c.tanggal_lahir, c.hubungan_keluarga, {% for a in member_attributes %}c.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %})
      IS DISTINCT FROM
      (p.nama, p.jenis_kelamin, p.tanggal_lahir, p.hubungan_keluarga, {% for a in member_attributes %}p.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %})
   OR (ck.kode_wilayah, ck.alamat, {% for a in family_attributes %}ck.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, ck.pengeluaran_per_kapita, ck.groundcheck_hasil)
      IS DISTINCT FROM
      (pk.kode_wilayah, pk.alamat, {% for a in family_attributes %}pk.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, pk.pengeluaran_per_kapita, pk.groundcheck_hasil))
ORDER BY 1
