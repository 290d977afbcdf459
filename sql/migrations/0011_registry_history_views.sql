-- Views and functions over the registry's history (documented in sql/README.md).

-- The registry now: open persons with their current family and relationship.
CREATE VIEW registry.current_person AS
SELECT p.nik, m.no_kk, m.hubungan_keluarga, p.nama, p.jenis_kelamin, p.tanggal_lahir, p.status_perkawinan,
       p.pendidikan_tertinggi, p.status_sekolah, p.status_pekerjaan, p.disabilitas, p.penyakit_kronis,
       p.created_round, p.updated_round
FROM registry.person p
JOIN registry.membership m ON m.nik = p.nik AND m.valid_to_round IS NULL
WHERE p.is_open;

CREATE VIEW registry.current_family AS
SELECT f.* FROM registry.family f WHERE f.is_open;

-- person as it stood at the end of round r: current values, with every field changed after r taken
-- back to the old value of its first later change; rows created after r are left out, rows closed
-- later are back.
CREATE FUNCTION registry.person_as_of(r smallint) RETURNS TABLE (
    nik bigint,
    nama text,
    jenis_kelamin smallint,
    tanggal_lahir date,
    status_perkawinan smallint,
    pendidikan_tertinggi smallint,
    status_sekolah smallint,
    status_pekerjaan smallint,
    disabilitas smallint,
    penyakit_kronis smallint
) LANGUAGE sql STABLE AS $$
    WITH later AS (
        SELECT DISTINCT ON (entity_key, field) entity_key, field, old_value
        FROM registry.field_change
        WHERE entity = 'P' AND round_seq > r
        ORDER BY entity_key, field, round_seq, changed_at
    ),
    pivot AS (
        SELECT entity_key,
           bool_or(field = 'nama') AS has_nama, max(old_value) FILTER (WHERE field = 'nama') AS old_nama,
           bool_or(field = 'jenis_kelamin') AS has_jenis_kelamin, max(old_value) FILTER (WHERE field = 'jenis_kelamin') AS old_jenis_kelamin,
           bool_or(field = 'tanggal_lahir') AS has_tanggal_lahir, max(old_value) FILTER (WHERE field = 'tanggal_lahir') AS old_tanggal_lahir,
           bool_or(field = 'status_perkawinan') AS has_status_perkawinan, max(old_value) FILTER (WHERE field = 'status_perkawinan') AS old_status_perkawinan,
           bool_or(field = 'pendidikan_tertinggi') AS has_pendidikan_tertinggi, max(old_value) FILTER (WHERE field = 'pendidikan_tertinggi') AS old_pendidikan_tertinggi,
           bool_or(field = 'status_sekolah') AS has_status_sekolah, max(old_value) FILTER (WHERE field = 'status_sekolah') AS old_status_sekolah,
           bool_or(field = 'status_pekerjaan') AS has_status_pekerjaan, max(old_value) FILTER (WHERE field = 'status_pekerjaan') AS old_status_pekerjaan,
           bool_or(field = 'disabilitas') AS has_disabilitas, max(old_value) FILTER (WHERE field = 'disabilitas') AS old_disabilitas,
           bool_or(field = 'penyakit_kronis') AS has_penyakit_kronis, max(old_value) FILTER (WHERE field = 'penyakit_kronis') AS old_penyakit_kronis,
           bool_or(field = 'is_open') AS has_is_open, max(old_value) FILTER (WHERE field = 'is_open') AS old_is_open
        FROM later GROUP BY entity_key
    )
    SELECT x.nik,
       CASE WHEN l.has_nama THEN l.old_nama::text ELSE x.nama END,
       CASE WHEN l.has_jenis_kelamin THEN l.old_jenis_kelamin::smallint ELSE x.jenis_kelamin END,
       CASE WHEN l.has_tanggal_lahir THEN l.old_tanggal_lahir::date ELSE x.tanggal_lahir END,
       CASE WHEN l.has_status_perkawinan THEN l.old_status_perkawinan::smallint ELSE x.status_perkawinan END,
       CASE WHEN l.has_pendidikan_tertinggi THEN l.old_pendidikan_tertinggi::smallint ELSE x.pendidikan_tertinggi END,
       CASE WHEN l.has_status_sekolah THEN l.old_status_sekolah::smallint ELSE x.status_sekolah END,
       CASE WHEN l.has_status_pekerjaan THEN l.old_status_pekerjaan::smallint ELSE x.status_pekerjaan END,
       CASE WHEN l.has_disabilitas THEN l.old_disabilitas::smallint ELSE x.disabilitas END,
       CASE WHEN l.has_penyakit_kronis THEN l.old_penyakit_kronis::smallint ELSE x.penyakit_kronis END
    FROM registry.person x
    LEFT JOIN pivot l ON l.entity_key = x.nik
    WHERE x.created_round <= r
      AND CASE WHEN l.has_is_open THEN l.old_is_open::boolean ELSE x.is_open END
$$;

-- family as it stood at the end of round r: current values, with every field changed after r taken
-- back to the old value of its first later change; rows created after r are left out, rows closed
-- later are back.
CREATE FUNCTION registry.family_as_of(r smallint) RETURNS TABLE (
    no_kk bigint,
    kode_wilayah text,
    alamat text,
    tanggal_pendataan date,
    status_kepemilikan_rumah smallint,
    luas_lantai_m2 smallint,
    jenis_lantai smallint,
    jenis_dinding smallint,
    jenis_atap smallint,
    sumber_air_minum smallint,
    sumber_penerangan smallint,
    daya_listrik_va integer,
    bahan_bakar_memasak smallint,
    fasilitas_bab smallint,
    punya_kulkas smallint,
    punya_ac smallint,
    punya_sepeda_motor smallint,
    punya_mobil smallint,
    punya_emas smallint,
    punya_lahan smallint,
    punya_ternak smallint,
    pengeluaran_per_kapita bigint,
    tanggal_survei date,
    groundcheck_tanggal date,
    groundcheck_hasil text,
    groundcheck_layak smallint
) LANGUAGE sql STABLE AS $$
    WITH later AS (
        SELECT DISTINCT ON (entity_key, field) entity_key, field, old_value
        FROM registry.field_change
        WHERE entity = 'F' AND round_seq > r
        ORDER BY entity_key, field, round_seq, changed_at
    ),
    pivot AS (
        SELECT entity_key,
           bool_or(field = 'kode_wilayah') AS has_kode_wilayah, max(old_value) FILTER (WHERE field = 'kode_wilayah') AS old_kode_wilayah,
           bool_or(field = 'alamat') AS has_alamat, max(old_value) FILTER (WHERE field = 'alamat') AS old_alamat,
           bool_or(field = 'tanggal_pendataan') AS has_tanggal_pendataan, max(old_value) FILTER (WHERE field = 'tanggal_pendataan') AS old_tanggal_pendataan,
           bool_or(field = 'status_kepemilikan_rumah') AS has_status_kepemilikan_rumah, max(old_value) FILTER (WHERE field = 'status_kepemilikan_rumah') AS old_status_kepemilikan_rumah,
           bool_or(field = 'luas_lantai_m2') AS has_luas_lantai_m2, max(old_value) FILTER (WHERE field = 'luas_lantai_m2') AS old_luas_lantai_m2,
           bool_or(field = 'jenis_lantai') AS has_jenis_lantai, max(old_value) FILTER (WHERE field = 'jenis_lantai') AS old_jenis_lantai,
           bool_or(field = 'jenis_dinding') AS has_jenis_dinding, max(old_value) FILTER (WHERE field = 'jenis_dinding') AS old_jenis_dinding,
           bool_or(field = 'jenis_atap') AS has_jenis_atap, max(old_value) FILTER (WHERE field = 'jenis_atap') AS old_jenis_atap,
           bool_or(field = 'sumber_air_minum') AS has_sumber_air_minum, max(old_value) FILTER (WHERE field = 'sumber_air_minum') AS old_sumber_air_minum,
           bool_or(field = 'sumber_penerangan') AS has_sumber_penerangan, max(old_value) FILTER (WHERE field = 'sumber_penerangan') AS old_sumber_penerangan,
           bool_or(field = 'daya_listrik_va') AS has_daya_listrik_va, max(old_value) FILTER (WHERE field = 'daya_listrik_va') AS old_daya_listrik_va,
           bool_or(field = 'bahan_bakar_memasak') AS has_bahan_bakar_memasak, max(old_value) FILTER (WHERE field = 'bahan_bakar_memasak') AS old_bahan_bakar_memasak,
           bool_or(field = 'fasilitas_bab') AS has_fasilitas_bab, max(old_value) FILTER (WHERE field = 'fasilitas_bab') AS old_fasilitas_bab,
           bool_or(field = 'punya_kulkas') AS has_punya_kulkas, max(old_value) FILTER (WHERE field = 'punya_kulkas') AS old_punya_kulkas,
           bool_or(field = 'punya_ac') AS has_punya_ac, max(old_value) FILTER (WHERE field = 'punya_ac') AS old_punya_ac,
           bool_or(field = 'punya_sepeda_motor') AS has_punya_sepeda_motor, max(old_value) FILTER (WHERE field = 'punya_sepeda_motor') AS old_punya_sepeda_motor,
           bool_or(field = 'punya_mobil') AS has_punya_mobil, max(old_value) FILTER (WHERE field = 'punya_mobil') AS old_punya_mobil,
           bool_or(field = 'punya_emas') AS has_punya_emas, max(old_value) FILTER (WHERE field = 'punya_emas') AS old_punya_emas,
           bool_or(field = 'punya_lahan') AS has_punya_lahan, max(old_value) FILTER (WHERE field = 'punya_lahan') AS old_punya_lahan,
           bool_or(field = 'punya_ternak') AS has_punya_ternak, max(old_value) FILTER (WHERE field = 'punya_ternak') AS old_punya_ternak,
           bool_or(field = 'pengeluaran_per_kapita') AS has_pengeluaran_per_kapita, max(old_value) FILTER (WHERE field = 'pengeluaran_per_kapita') AS old_pengeluaran_per_kapita,
           bool_or(field = 'tanggal_survei') AS has_tanggal_survei, max(old_value) FILTER (WHERE field = 'tanggal_survei') AS old_tanggal_survei,
           bool_or(field = 'groundcheck_tanggal') AS has_groundcheck_tanggal, max(old_value) FILTER (WHERE field = 'groundcheck_tanggal') AS old_groundcheck_tanggal,
           bool_or(field = 'groundcheck_hasil') AS has_groundcheck_hasil, max(old_value) FILTER (WHERE field = 'groundcheck_hasil') AS old_groundcheck_hasil,
           bool_or(field = 'groundcheck_layak') AS has_groundcheck_layak, max(old_value) FILTER (WHERE field = 'groundcheck_layak') AS old_groundcheck_layak,
           bool_or(field = 'is_open') AS has_is_open, max(old_value) FILTER (WHERE field = 'is_open') AS old_is_open
        FROM later GROUP BY entity_key
    )
    SELECT x.no_kk,
       CASE WHEN l.has_kode_wilayah THEN l.old_kode_wilayah::text ELSE x.kode_wilayah END,
       CASE WHEN l.has_alamat THEN l.old_alamat::text ELSE x.alamat END,
       CASE WHEN l.has_tanggal_pendataan THEN l.old_tanggal_pendataan::date ELSE x.tanggal_pendataan END,
       CASE WHEN l.has_status_kepemilikan_rumah THEN l.old_status_kepemilikan_rumah::smallint ELSE x.status_kepemilikan_rumah END,
       CASE WHEN l.has_luas_lantai_m2 THEN l.old_luas_lantai_m2::smallint ELSE x.luas_lantai_m2 END,
       CASE WHEN l.has_jenis_lantai THEN l.old_jenis_lantai::smallint ELSE x.jenis_lantai END,
       CASE WHEN l.has_jenis_dinding THEN l.old_jenis_dinding::smallint ELSE x.jenis_dinding END,
       CASE WHEN l.has_jenis_atap THEN l.old_jenis_atap::smallint ELSE x.jenis_atap END,
       CASE WHEN l.has_sumber_air_minum THEN l.old_sumber_air_minum::smallint ELSE x.sumber_air_minum END,
       CASE WHEN l.has_sumber_penerangan THEN l.old_sumber_penerangan::smallint ELSE x.sumber_penerangan END,
       CASE WHEN l.has_daya_listrik_va THEN l.old_daya_listrik_va::integer ELSE x.daya_listrik_va END,
       CASE WHEN l.has_bahan_bakar_memasak THEN l.old_bahan_bakar_memasak::smallint ELSE x.bahan_bakar_memasak END,
       CASE WHEN l.has_fasilitas_bab THEN l.old_fasilitas_bab::smallint ELSE x.fasilitas_bab END,
       CASE WHEN l.has_punya_kulkas THEN l.old_punya_kulkas::smallint ELSE x.punya_kulkas END,
       CASE WHEN l.has_punya_ac THEN l.old_punya_ac::smallint ELSE x.punya_ac END,
       CASE WHEN l.has_punya_sepeda_motor THEN l.old_punya_sepeda_motor::smallint ELSE x.punya_sepeda_motor END,
       CASE WHEN l.has_punya_mobil THEN l.old_punya_mobil::smallint ELSE x.punya_mobil END,
       CASE WHEN l.has_punya_emas THEN l.old_punya_emas::smallint ELSE x.punya_emas END,
       CASE WHEN l.has_punya_lahan THEN l.old_punya_lahan::smallint ELSE x.punya_lahan END,
       CASE WHEN l.has_punya_ternak THEN l.old_punya_ternak::smallint ELSE x.punya_ternak END,
       CASE WHEN l.has_pengeluaran_per_kapita THEN l.old_pengeluaran_per_kapita::bigint ELSE x.pengeluaran_per_kapita END,
       CASE WHEN l.has_tanggal_survei THEN l.old_tanggal_survei::date ELSE x.tanggal_survei END,
       CASE WHEN l.has_groundcheck_tanggal THEN l.old_groundcheck_tanggal::date ELSE x.groundcheck_tanggal END,
       CASE WHEN l.has_groundcheck_hasil THEN l.old_groundcheck_hasil::text ELSE x.groundcheck_hasil END,
       CASE WHEN l.has_groundcheck_layak THEN l.old_groundcheck_layak::smallint ELSE x.groundcheck_layak END
    FROM registry.family x
    LEFT JOIN pivot l ON l.entity_key = x.no_kk
    WHERE x.created_round <= r
      AND CASE WHEN l.has_is_open THEN l.old_is_open::boolean ELSE x.is_open END
$$;

-- Who was in which family at the end of round r.
CREATE FUNCTION registry.membership_as_of(r smallint) RETURNS TABLE (nik bigint, no_kk bigint, hubungan_keluarga smallint)
LANGUAGE sql STABLE AS $$
    SELECT m.nik, m.no_kk, m.hubungan_keluarga FROM registry.membership m
    WHERE m.valid_from_round <= r AND (m.valid_to_round IS NULL OR m.valid_to_round > r)
$$;

-- The registry as of round r, one row per person, shaped like registry.current_person.
CREATE FUNCTION registry.registry_as_of(r smallint) RETURNS TABLE (
    nik bigint, no_kk bigint, hubungan_keluarga smallint, nama text, jenis_kelamin smallint, tanggal_lahir date,
    status_perkawinan smallint, pendidikan_tertinggi smallint, status_sekolah smallint, status_pekerjaan smallint,
    disabilitas smallint, penyakit_kronis smallint
) LANGUAGE sql STABLE AS $$
    SELECT p.nik, m.no_kk, m.hubungan_keluarga, p.nama, p.jenis_kelamin, p.tanggal_lahir, p.status_perkawinan,
           p.pendidikan_tertinggi, p.status_sekolah, p.status_pekerjaan, p.disabilitas, p.penyakit_kronis
    FROM registry.person_as_of(r) p JOIN registry.membership_as_of(r) m ON m.nik = p.nik
$$;

-- Per-field provenance of one person: each field's current value and the round, submission and
-- source that set it (its latest recorded change, else the row's creation).
CREATE FUNCTION registry.person_provenance(k bigint) RETURNS TABLE (
    field text, value text, round_seq smallint, submission_pk bigint, source text
) LANGUAGE sql STABLE AS $$
    SELECT v.field, v.value,
           coalesce(c.round_seq, x.created_round),
           CASE WHEN c.round_seq IS NULL THEN x.created_submission ELSE c.submission_pk END,
           coalesce(c.source, CASE WHEN x.created_submission IS NULL THEN 'system' ELSE 'pemda' END)
    FROM registry.person x
    CROSS JOIN LATERAL (VALUES
        ('nama', x.nama::text),
        ('jenis_kelamin', x.jenis_kelamin::text),
        ('tanggal_lahir', x.tanggal_lahir::text),
        ('status_perkawinan', x.status_perkawinan::text),
        ('pendidikan_tertinggi', x.pendidikan_tertinggi::text),
        ('status_sekolah', x.status_sekolah::text),
        ('status_pekerjaan', x.status_pekerjaan::text),
        ('disabilitas', x.disabilitas::text),
        ('penyakit_kronis', x.penyakit_kronis::text)
    ) AS v(field, value)
    LEFT JOIN LATERAL (
        SELECT fc.round_seq, fc.submission_pk, fc.source FROM registry.field_change fc
        WHERE fc.entity = 'P' AND fc.entity_key = x.nik AND fc.field = v.field
        ORDER BY fc.round_seq DESC, fc.changed_at DESC LIMIT 1
    ) c ON true
    WHERE x.nik = k
$$;

-- Per-field provenance of one family: each field's current value and the round, submission and
-- source that set it (its latest recorded change, else the row's creation).
CREATE FUNCTION registry.family_provenance(k bigint) RETURNS TABLE (
    field text, value text, round_seq smallint, submission_pk bigint, source text
) LANGUAGE sql STABLE AS $$
    SELECT v.field, v.value,
           coalesce(c.round_seq, x.created_round),
           CASE WHEN c.round_seq IS NULL THEN x.created_submission ELSE c.submission_pk END,
           coalesce(c.source, CASE WHEN x.created_submission IS NULL THEN 'system' ELSE 'pemda' END)
    FROM registry.family x
    CROSS JOIN LATERAL (VALUES
        ('kode_wilayah', x.kode_wilayah::text),
        ('alamat', x.alamat::text),
        ('tanggal_pendataan', x.tanggal_pendataan::text),
        ('status_kepemilikan_rumah', x.status_kepemilikan_rumah::text),
        ('luas_lantai_m2', x.luas_lantai_m2::text),
        ('jenis_lantai', x.jenis_lantai::text),
        ('jenis_dinding', x.jenis_dinding::text),
        ('jenis_atap', x.jenis_atap::text),
        ('sumber_air_minum', x.sumber_air_minum::text),
        ('sumber_penerangan', x.sumber_penerangan::text),
        ('daya_listrik_va', x.daya_listrik_va::text),
        ('bahan_bakar_memasak', x.bahan_bakar_memasak::text),
        ('fasilitas_bab', x.fasilitas_bab::text),
        ('punya_kulkas', x.punya_kulkas::text),
        ('punya_ac', x.punya_ac::text),
        ('punya_sepeda_motor', x.punya_sepeda_motor::text),
        ('punya_mobil', x.punya_mobil::text),
        ('punya_emas', x.punya_emas::text),
        ('punya_lahan', x.punya_lahan::text),
        ('punya_ternak', x.punya_ternak::text),
        ('pengeluaran_per_kapita', x.pengeluaran_per_kapita::text),
        ('tanggal_survei', x.tanggal_survei::text),
        ('groundcheck_tanggal', x.groundcheck_tanggal::text),
        ('groundcheck_hasil', x.groundcheck_hasil::text),
        ('groundcheck_layak', x.groundcheck_layak::text)
    ) AS v(field, value)
    LEFT JOIN LATERAL (
        SELECT fc.round_seq, fc.submission_pk, fc.source FROM registry.field_change fc
        WHERE fc.entity = 'F' AND fc.entity_key = x.no_kk AND fc.field = v.field
        ORDER BY fc.round_seq DESC, fc.changed_at DESC LIMIT 1
    ) c ON true
    WHERE x.no_kk = k
$$;
