-- Build candidate version %(version)s from the registry as merged by its round (write-audit-publish:
-- "write"). Runs in one transaction with dtsen.publish.candidate; the ranking statement between
-- snapshot_members and eligibility_context is generated from the ranking model's file.

-- name: snapshot_members
INSERT INTO publish.anggota (version, nik, no_kk, nama, jenis_kelamin, tanggal_lahir, hubungan_keluarga,
                             {% for a in member_attributes %}{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %})
SELECT %(version)s, p.nik, m.no_kk, p.nama, p.jenis_kelamin, p.tanggal_lahir, m.hubungan_keluarga,
       {% for a in member_attributes %}p.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}
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
    alamat, tanggal_pendataan, {% for a in family_attributes %}{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, pengeluaran_per_kapita,
    tanggal_survei, groundcheck_tanggal, groundcheck_hasil)
SELECT %(version)s, f.no_kk, f.kode_wilayah,
       least(10, 1 + floor(10 * (s.before::numeric / s.total)))::smallint,
       s.skor, s.sumber, s.jumlah_anggota,
       f.alamat, f.tanggal_pendataan, {% for a in family_attributes %}f.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, f.pengeluaran_per_kapita, f.tanggal_survei, f.groundcheck_tanggal,
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
