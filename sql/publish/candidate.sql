-- Build candidate version %(version)s from the registry as merged by its round (write-audit-publish:
-- "write"). Runs in one transaction with dtsen.publish.candidate; the ranking statement between
-- snapshot_members and eligibility_context is generated from the ranking model's file.

-- name: snapshot_members
INSERT INTO publish.anggota (version, nik, no_kk, nama, jenis_kelamin, tanggal_lahir, hubungan_keluarga,
                             status_perkawinan, pendidikan_tertinggi, status_sekolah, status_pekerjaan,
                             disabilitas, penyakit_kronis)
SELECT %(version)s, p.nik, m.no_kk, p.nama, p.jenis_kelamin, p.tanggal_lahir, m.hubungan_keluarga,
       p.status_perkawinan, p.pendidikan_tertinggi, p.status_sekolah, p.status_pekerjaan,
       p.disabilitas, p.penyakit_kronis
FROM registry.person p
JOIN registry.membership m ON m.nik = p.nik AND m.valid_to_round IS NULL
WHERE p.is_open;

-- name: analyze_members
ANALYZE publish.anggota;

-- Population-weighted national deciles: families sorted by score (ties by no_kk, so the cut is
-- deterministic), each family's desil from the share of individuals ranked before it. Each desil
-- holds a tenth of individuals up to one family's size.
-- name: assign_desil
INSERT INTO publish.keluarga (version, no_kk, kode_wilayah, desil, skor_kesejahteraan, skor_sumber, jumlah_anggota,
    alamat, tanggal_pendataan, status_kepemilikan_rumah, luas_lantai_m2, jenis_lantai, jenis_dinding, jenis_atap,
    sumber_air_minum, sumber_penerangan, daya_listrik_va, bahan_bakar_memasak, fasilitas_bab, punya_kulkas,
    punya_ac, punya_sepeda_motor, punya_mobil, punya_emas, punya_lahan, punya_ternak, pengeluaran_per_kapita,
    tanggal_survei, groundcheck_tanggal, groundcheck_hasil)
SELECT %(version)s, f.no_kk, f.kode_wilayah,
       least(10, 1 + floor(10 * (s.before::numeric / s.total)))::smallint,
       s.skor, s.sumber, s.jumlah_anggota,
       f.alamat, f.tanggal_pendataan, f.status_kepemilikan_rumah, f.luas_lantai_m2, f.jenis_lantai, f.jenis_dinding,
       f.jenis_atap, f.sumber_air_minum, f.sumber_penerangan, f.daya_listrik_va, f.bahan_bakar_memasak,
       f.fasilitas_bab, f.punya_kulkas, f.punya_ac, f.punya_sepeda_motor, f.punya_mobil, f.punya_emas,
       f.punya_lahan, f.punya_ternak, f.pengeluaran_per_kapita, f.tanggal_survei, f.groundcheck_tanggal,
       f.groundcheck_hasil
FROM (
    SELECT no_kk, skor, sumber, jumlah_anggota,
           sum(jumlah_anggota) OVER (ORDER BY skor, no_kk ROWS UNBOUNDED PRECEDING) - jumlah_anggota AS before,
           sum(jumlah_anggota) OVER () AS total
    FROM family_score
) s
JOIN registry.family f ON f.no_kk = s.no_kk;

-- name: analyze_families
ANALYZE publish.keluarga;
