-- The files of a published version (contract section 3), each streamed by COPY into Parquet.
-- NIK and no_kk are written as 16-digit text, as in every other file of the contract.
-- Parameters: %(version)s, %(previous)s (-1 when none), %(program)s.

-- name: keluarga
SELECT no_kk::text AS no_kk, kode_wilayah, desil, skor_kesejahteraan, jumlah_anggota, skor_sumber,
       alamat, tanggal_pendataan, status_kepemilikan_rumah, luas_lantai_m2, jenis_lantai, jenis_dinding,
       jenis_atap, sumber_air_minum, sumber_penerangan, daya_listrik_va, bahan_bakar_memasak, fasilitas_bab,
       punya_kulkas, punya_ac, punya_sepeda_motor, punya_mobil, punya_emas, punya_lahan, punya_ternak,
       pengeluaran_per_kapita, tanggal_survei, groundcheck_tanggal, groundcheck_hasil
FROM publish.keluarga WHERE version = %(version)s
ORDER BY no_kk

-- name: anggota
SELECT nik::text AS nik, no_kk::text AS no_kk, nama, jenis_kelamin, tanggal_lahir, hubungan_keluarga,
       status_perkawinan, pendidikan_tertinggi, status_sekolah, status_pekerjaan, disabilitas, penyakit_kronis
FROM publish.anggota WHERE version = %(version)s
ORDER BY no_kk, hubungan_keluarga, nik

-- name: program
SELECT nik::text AS nik, no_kk::text AS no_kk, kode_wilayah, desil, prioritas
FROM publish.recipient WHERE version = %(version)s AND program = %(program)s
ORDER BY kode_wilayah, no_kk, nik

-- One row per person whose record differs from the previous version, with the most telling change:
-- ADDED, REMOVED, MOVED_FAMILY, DESIL_CHANGED, then ATTRIBUTES_CHANGED (the person's own or their
-- family's attributes); desil_before/desil_after are filled whenever the person is in that version.
-- name: perubahan
SELECT coalesce(c.nik, p.nik)::text AS nik,
       CASE WHEN p.nik IS NULL THEN 'ADDED'
            WHEN c.nik IS NULL THEN 'REMOVED'
            WHEN c.no_kk <> p.no_kk THEN 'MOVED_FAMILY'
            WHEN ck.desil <> pk.desil THEN 'DESIL_CHANGED'
            ELSE 'ATTRIBUTES_CHANGED' END AS change,
       pk.desil AS desil_before, ck.desil AS desil_after
FROM (SELECT * FROM publish.anggota WHERE version = %(version)s) c
FULL JOIN (SELECT * FROM publish.anggota WHERE version = %(previous)s) p ON p.nik = c.nik
LEFT JOIN publish.keluarga ck ON ck.version = %(version)s AND ck.no_kk = c.no_kk
LEFT JOIN publish.keluarga pk ON pk.version = %(previous)s AND pk.no_kk = p.no_kk
WHERE p.nik IS NULL OR c.nik IS NULL OR c.no_kk <> p.no_kk OR ck.desil <> pk.desil
   OR (c.nama, c.jenis_kelamin, c.tanggal_lahir, c.hubungan_keluarga, c.status_perkawinan, c.pendidikan_tertinggi,
       c.status_sekolah, c.status_pekerjaan, c.disabilitas, c.penyakit_kronis)
      IS DISTINCT FROM
      (p.nama, p.jenis_kelamin, p.tanggal_lahir, p.hubungan_keluarga, p.status_perkawinan, p.pendidikan_tertinggi,
       p.status_sekolah, p.status_pekerjaan, p.disabilitas, p.penyakit_kronis)
   OR (ck.kode_wilayah, ck.alamat, ck.status_kepemilikan_rumah, ck.luas_lantai_m2, ck.jenis_lantai, ck.jenis_dinding,
       ck.jenis_atap, ck.sumber_air_minum, ck.sumber_penerangan, ck.daya_listrik_va, ck.bahan_bakar_memasak,
       ck.fasilitas_bab, ck.punya_kulkas, ck.punya_ac, ck.punya_sepeda_motor, ck.punya_mobil, ck.punya_emas,
       ck.punya_lahan, ck.punya_ternak, ck.pengeluaran_per_kapita, ck.groundcheck_hasil)
      IS DISTINCT FROM
      (pk.kode_wilayah, pk.alamat, pk.status_kepemilikan_rumah, pk.luas_lantai_m2, pk.jenis_lantai, pk.jenis_dinding,
       pk.jenis_atap, pk.sumber_air_minum, pk.sumber_penerangan, pk.daya_listrik_va, pk.bahan_bakar_memasak,
       pk.fasilitas_bab, pk.punya_kulkas, pk.punya_ac, pk.punya_sepeda_motor, pk.punya_mobil, pk.punya_emas,
       pk.punya_lahan, pk.punya_ternak, pk.pengeluaran_per_kapita, pk.groundcheck_hasil)
ORDER BY 1
