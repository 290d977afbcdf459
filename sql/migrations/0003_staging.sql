-- Staging: rows exactly as received (all text, trimmed later by validation), one table per file kind,
-- keyed by (submission, original 1-based line number; header = line 1).
-- Partitioned by round: a round's raw rows are loaded, validated and merged together, and an old
-- round is dropped in O(1) by detaching its partition (the raw files are kept on disk anyway).
CREATE SCHEMA IF NOT EXISTS staging;

CREATE TABLE staging.pemda_keluarga (
    round_seq smallint NOT NULL, submission_pk bigint NOT NULL, line_no integer NOT NULL,
    operasi text, no_kk text, kode_wilayah text, alamat text, tanggal_pendataan text,
    status_kepemilikan_rumah text, luas_lantai_m2 text, jenis_lantai text, jenis_dinding text,
    jenis_atap text, sumber_air_minum text, sumber_penerangan text, daya_listrik_va text,
    bahan_bakar_memasak text, fasilitas_bab text,
    punya_kulkas text, punya_ac text, punya_sepeda_motor text, punya_mobil text, punya_emas text,
    punya_lahan text, punya_ternak text,
    alasan_hapus text,
    PRIMARY KEY (round_seq, submission_pk, line_no)
) PARTITION BY LIST (round_seq);

CREATE TABLE staging.pemda_anggota (
    round_seq smallint NOT NULL, submission_pk bigint NOT NULL, line_no integer NOT NULL,
    operasi text, nik text, no_kk text, nama text, jenis_kelamin text, tanggal_lahir text,
    hubungan_keluarga text, status_perkawinan text, pendidikan_tertinggi text, status_sekolah text,
    status_pekerjaan text, disabilitas text, penyakit_kronis text, alasan_hapus text,
    PRIMARY KEY (round_seq, submission_pk, line_no)
) PARTITION BY LIST (round_seq);

CREATE TABLE staging.bps_keluarga (
    round_seq smallint NOT NULL, submission_pk bigint NOT NULL, line_no integer NOT NULL,
    no_kk text, kode_wilayah text, tanggal_survei text,
    status_kepemilikan_rumah text, luas_lantai_m2 text, jenis_lantai text, jenis_dinding text,
    jenis_atap text, sumber_air_minum text, sumber_penerangan text, daya_listrik_va text,
    bahan_bakar_memasak text, fasilitas_bab text,
    punya_kulkas text, punya_ac text, punya_sepeda_motor text, punya_mobil text, punya_emas text,
    punya_lahan text, punya_ternak text,
    pengeluaran_per_kapita text,
    PRIMARY KEY (round_seq, submission_pk, line_no)
) PARTITION BY LIST (round_seq);

CREATE TABLE staging.kemensos_groundcheck (
    round_seq smallint NOT NULL, submission_pk bigint NOT NULL, line_no integer NOT NULL,
    no_kk text, tanggal_kunjungan text, hasil text, layak text, petugas_id text, catatan text,
    PRIMARY KEY (round_seq, submission_pk, line_no)
) PARTITION BY LIST (round_seq);

-- Dukcapil extracts are staged per snapshot, not per round.
CREATE TABLE staging.dukcapil_penduduk (
    snapshot_pk integer NOT NULL, line_no integer NOT NULL,
    nik text, no_kk text, nama text, jenis_kelamin text, tanggal_lahir text, kode_wilayah text,
    status_hidup text, tanggal_meninggal text,
    PRIMARY KEY (snapshot_pk, line_no)
) PARTITION BY LIST (snapshot_pk);

-- Typed civil-registry reference, one partition per snapshot; ref.dukcapil_terkini is the latest.
CREATE TABLE ref.dukcapil_penduduk (
    snapshot_pk       integer NOT NULL,
    nik               bigint NOT NULL,
    no_kk             bigint,
    nama              text NOT NULL,
    jenis_kelamin     smallint NOT NULL,
    tanggal_lahir     date NOT NULL,
    kode_wilayah      text,
    status_hidup      text NOT NULL CHECK (status_hidup IN ('HIDUP', 'MENINGGAL')),
    tanggal_meninggal date,
    PRIMARY KEY (snapshot_pk, nik)
) PARTITION BY LIST (snapshot_pk);

CREATE VIEW ref.dukcapil_terkini AS
SELECT d.* FROM ref.dukcapil_penduduk d
WHERE d.snapshot_pk = (SELECT max(snapshot_pk) FROM ingest.dukcapil_snapshot
                       WHERE snapshot_date = (SELECT max(snapshot_date) FROM ingest.dukcapil_snapshot));

-- Create the round's staging partitions (idempotent). Called by ingest before COPY.
CREATE FUNCTION staging.ensure_round_partitions(p_round_seq smallint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['pemda_keluarga', 'pemda_anggota', 'bps_keluarga', 'kemensos_groundcheck'] LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS staging.%I PARTITION OF staging.%I FOR VALUES IN (%s)',
                       t || '_r' || p_round_seq, t, p_round_seq);
    END LOOP;
END $$;

CREATE FUNCTION staging.ensure_snapshot_partitions(p_snapshot_pk integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS staging.%I PARTITION OF staging.dukcapil_penduduk FOR VALUES IN (%s)',
                   'dukcapil_penduduk_s' || p_snapshot_pk, p_snapshot_pk);
    EXECUTE format('CREATE TABLE IF NOT EXISTS ref.%I PARTITION OF ref.dukcapil_penduduk FOR VALUES IN (%s)',
                   'dukcapil_penduduk_s' || p_snapshot_pk, p_snapshot_pk);
END $$;
