-- Write-audit-publish, the "write" part: a candidate version is a frozen copy of the registry as
-- ranked for that round (publish.keluarga, publish.anggota, publish.recipient; one partition per
-- version). The audit reads exactly these rows, the published files are written from them, and
-- program teams' SQL views read them, so what was audited is what was published, and a later merge
-- cannot change a published version. Old versions' partitions can be detached once their files are
-- archived (the files are the record).

DROP TABLE publish.family_rank;  -- replaced by publish.keluarga (never written before this migration)

CREATE TABLE publish.keluarga (
    version                  integer NOT NULL,
    no_kk                    bigint NOT NULL,
    kode_wilayah             text NOT NULL,
    desil                    smallint NOT NULL CHECK (desil BETWEEN 1 AND 10),
    skor_kesejahteraan       double precision NOT NULL,  -- log monthly per-capita expenditure
    skor_sumber              text NOT NULL CHECK (skor_sumber IN ('PMT', 'BPS')),
    jumlah_anggota           smallint NOT NULL,
    alamat                   text,
    tanggal_pendataan        date,
    status_kepemilikan_rumah smallint, luas_lantai_m2 smallint, jenis_lantai smallint,
    jenis_dinding smallint, jenis_atap smallint, sumber_air_minum smallint, sumber_penerangan smallint,
    daya_listrik_va integer, bahan_bakar_memasak smallint, fasilitas_bab smallint,
    punya_kulkas smallint, punya_ac smallint, punya_sepeda_motor smallint, punya_mobil smallint,
    punya_emas smallint, punya_lahan smallint, punya_ternak smallint,
    pengeluaran_per_kapita   bigint,
    tanggal_survei           date,
    groundcheck_tanggal      date,
    groundcheck_hasil        text,
    PRIMARY KEY (version, no_kk)
) PARTITION BY LIST (version);

CREATE TABLE publish.anggota (
    version              integer NOT NULL,
    nik                  bigint NOT NULL,
    no_kk                bigint NOT NULL,
    nama                 text NOT NULL,
    jenis_kelamin        smallint NOT NULL,
    tanggal_lahir        date NOT NULL,
    hubungan_keluarga    smallint NOT NULL,
    status_perkawinan smallint, pendidikan_tertinggi smallint, status_sekolah smallint,
    status_pekerjaan smallint, disabilitas smallint, penyakit_kronis smallint,
    PRIMARY KEY (version, nik)
) PARTITION BY LIST (version);

-- Sekolah Rakyat gives priority to children out of school: a program may mark recipients.
ALTER TABLE publish.recipient ADD COLUMN prioritas boolean NOT NULL DEFAULT false;

-- CANDIDATE -> AUDITED -> PUBLISHED -> SUPERSEDED, or CANDIDATE -> BLOCKED -> APPROVED -> PUBLISHED.
-- DISCARDED frees the round for a new candidate (e.g. after a ranking-model fix).
ALTER TABLE publish.version DROP CONSTRAINT version_status_check;
ALTER TABLE publish.version ADD CONSTRAINT version_status_check CHECK (status IN
    ('CANDIDATE', 'AUDITED', 'BLOCKED', 'APPROVED', 'PUBLISHED', 'SUPERSEDED', 'DISCARDED'));
ALTER TABLE publish.version ADD COLUMN reference_date date;
ALTER TABLE publish.version ADD COLUMN approved_at timestamptz;
CREATE UNIQUE INDEX version_one_live_per_round ON publish.version (round_seq) WHERE status <> 'DISCARDED';

CREATE OR REPLACE FUNCTION publish.ensure_version_partitions(p_version integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['keluarga', 'anggota', 'recipient'] LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS publish.%I PARTITION OF publish.%I FOR VALUES IN (%s)',
                       t || '_v' || p_version, t, p_version);
    END LOOP;
END $$;

-- The current published version, and each program's recipients in it (for program teams).
CREATE VIEW publish.current_version AS
SELECT * FROM publish.version WHERE status = 'PUBLISHED' ORDER BY version DESC LIMIT 1;

CREATE VIEW publish.recipient_published AS
SELECT r.version, r.program, r.nik, r.no_kk, r.kode_wilayah, r.desil, r.prioritas
FROM publish.recipient r
JOIN publish.version v ON v.version = r.version AND v.status IN ('PUBLISHED', 'SUPERSEDED');

CREATE VIEW publish.recipient_current AS
SELECT r.* FROM publish.recipient_published r WHERE r.version = (SELECT version FROM publish.current_version);
