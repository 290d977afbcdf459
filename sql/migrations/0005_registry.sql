-- The registry: families, persons and membership, with change history and per-field provenance.
-- NIK and no_kk are stored as bigint: 16 digits always start with a province code 11-96, so no
-- leading zeros are lost, and an 8-byte key halves index size against text at 289M rows.
-- Rows are never deleted: a removed family/person is closed (is_open = false) with the round and reason.
CREATE SCHEMA IF NOT EXISTS registry;

-- Families, hash-partitioned on the key: merges join on no_kk, and 8 partitions keep each index and
-- VACUUM pass at ~12M rows of the national 95M.
CREATE TABLE registry.family (
    no_kk                    bigint NOT NULL,
    kode_wilayah             text NOT NULL,
    alamat                   text,
    tanggal_pendataan        date,
    status_kepemilikan_rumah smallint, luas_lantai_m2 smallint, jenis_lantai smallint,
    jenis_dinding smallint, jenis_atap smallint, sumber_air_minum smallint, sumber_penerangan smallint,
    daya_listrik_va integer, bahan_bakar_memasak smallint, fasilitas_bab smallint,
    punya_kulkas smallint, punya_ac smallint, punya_sepeda_motor smallint, punya_mobil smallint,
    punya_emas smallint, punya_lahan smallint, punya_ternak smallint,
    -- latest BPS measurement
    pengeluaran_per_kapita   bigint,
    tanggal_survei           date,
    -- latest Kemensos ground check
    groundcheck_tanggal      date,
    groundcheck_hasil        text CHECK (groundcheck_hasil IN ('DITEMUKAN', 'TIDAK_DITEMUKAN', 'PINDAH', 'MENINGGAL')),
    groundcheck_layak        smallint,
    groundcheck_submission   bigint,
    -- lifecycle and creation provenance (later field changes are in registry.field_change)
    is_open                  boolean NOT NULL DEFAULT true,
    closed_reason            text,
    created_round            smallint NOT NULL,
    created_submission       bigint,
    updated_round            smallint NOT NULL,
    closed_round             smallint,
    PRIMARY KEY (no_kk)
) PARTITION BY HASH (no_kk);

-- Persons: 16 hash partitions (~18M rows each at national scale).
CREATE TABLE registry.person (
    nik                  bigint NOT NULL,
    nama                 text NOT NULL,
    jenis_kelamin        smallint NOT NULL,
    tanggal_lahir        date NOT NULL,
    status_perkawinan smallint, pendidikan_tertinggi smallint, status_sekolah smallint,
    status_pekerjaan smallint, disabilitas smallint, penyakit_kronis smallint,
    is_open              boolean NOT NULL DEFAULT true,
    closed_reason        text,          -- MENINGGAL, PINDAH, DUPLIKAT, SALAH_DATA, FAMILY_CLOSED
    tanggal_meninggal    date,          -- from Dukcapil
    created_round        smallint NOT NULL,
    created_submission   bigint,
    updated_round        smallint NOT NULL,
    closed_round         smallint,
    PRIMARY KEY (nik)
) PARTITION BY HASH (nik);

-- Membership is temporal: a move or a change of relationship closes the current row
-- (valid_to_round) and opens a new one, so "who was in which family in round r" is a range query.
CREATE TABLE registry.membership (
    nik               bigint NOT NULL,
    no_kk             bigint NOT NULL,
    hubungan_keluarga smallint NOT NULL,
    valid_from_round  smallint NOT NULL,
    valid_to_round    smallint,         -- first round in which it no longer holds; NULL = current
    submission_pk     bigint,
    source            text NOT NULL DEFAULT 'pemda',
    PRIMARY KEY (nik, valid_from_round),
    CHECK (valid_to_round IS NULL OR valid_to_round >= valid_from_round)
) PARTITION BY HASH (nik);
-- Invariant "each NIK in at most one open membership", enforced by the database itself.
CREATE UNIQUE INDEX membership_one_open_per_nik ON registry.membership (nik) WHERE valid_to_round IS NULL;
CREATE INDEX membership_open_by_family ON registry.membership (no_kk) WHERE valid_to_round IS NULL;

-- Every change after creation, one row per (record, field): previous value, new value, round,
-- submission and source. Append-only; partitioned by round so one round's changes are one
-- partition (cheap to scan for "what changed", cheap to keep or archive).
CREATE TABLE registry.field_change (
    round_seq     smallint NOT NULL,
    entity        char(1) NOT NULL CHECK (entity IN ('F', 'P', 'M')),  -- family, person, membership
    entity_key    bigint NOT NULL,   -- no_kk for F, nik for P and M
    field         text NOT NULL,
    old_value     text,
    new_value     text,
    submission_pk bigint,            -- NULL when the source is a Dukcapil snapshot or the system
    source        text NOT NULL CHECK (source IN ('pemda', 'bps', 'kemensos', 'dukcapil', 'system')),
    changed_at    timestamptz NOT NULL DEFAULT now()
) PARTITION BY LIST (round_seq);

CREATE FUNCTION registry.ensure_round_partitions(p_round_seq smallint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'field_change_r' || p_round_seq;
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS registry.%I PARTITION OF registry.field_change FOR VALUES IN (%s)',
                   part, p_round_seq);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON registry.%I (entity, entity_key, field)',
                   part || '_key_idx', part);
END $$;

DO $$
BEGIN
    FOR i IN 0..7 LOOP
        EXECUTE format('CREATE TABLE registry.family_p%s PARTITION OF registry.family FOR VALUES WITH (MODULUS 8, REMAINDER %s)', i, i);
    END LOOP;
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE registry.person_p%s PARTITION OF registry.person FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
        EXECUTE format('CREATE TABLE registry.membership_p%s PARTITION OF registry.membership FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
    END LOOP;
END $$;

CREATE INDEX family_open_wilayah ON registry.family (kode_wilayah) WHERE is_open;
