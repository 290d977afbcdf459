-- Reference data: Kemendagri region codes (Kepmendagri 300.2.2-2138/2025), loaded by `dtsen db migrate`.
-- Codes are undotted text as in the contract; the level follows from the length.
CREATE SCHEMA IF NOT EXISTS ref;

CREATE TABLE meta.reference_load (
    name      text PRIMARY KEY,
    source    text NOT NULL,
    sha256    text NOT NULL,
    rows      integer NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ref.provinsi (
    kode text PRIMARY KEY CHECK (kode ~ '^[0-9]{2}$'),
    nama text NOT NULL
);

CREATE TABLE ref.kabupaten (
    kode          text PRIMARY KEY CHECK (kode ~ '^[0-9]{4}$'),
    nama          text NOT NULL,
    provinsi_kode text GENERATED ALWAYS AS (left(kode, 2)) STORED REFERENCES ref.provinsi,
    -- 01-69 kabupaten, 71-99 kota
    is_kota       boolean GENERATED ALWAYS AS (substr(kode, 3, 2)::int >= 71) STORED
);

CREATE TABLE ref.kecamatan (
    kode           text PRIMARY KEY CHECK (kode ~ '^[0-9]{6}$'),
    nama           text NOT NULL,
    kabupaten_kode text GENERATED ALWAYS AS (left(kode, 4)) STORED REFERENCES ref.kabupaten
);

CREATE TABLE ref.desa (
    kode           text PRIMARY KEY CHECK (kode ~ '^[0-9]{10}$'),
    nama           text NOT NULL,
    kecamatan_kode text GENERATED ALWAYS AS (left(kode, 6)) STORED REFERENCES ref.kecamatan,
    kabupaten_kode text GENERATED ALWAYS AS (left(kode, 4)) STORED,
    -- first digit of the village part: 1 kelurahan, 2 desa, 3 desa adat
    jenis          smallint GENERATED ALWAYS AS (substr(kode, 7, 1)::smallint) STORED
);
CREATE INDEX desa_kabupaten_idx ON ref.desa (kabupaten_kode);

-- One readable row per village with every level's name, for reports and feedback.
CREATE VIEW ref.wilayah_lengkap AS
SELECT d.kode AS kode_desa, d.nama AS nama_desa,
       c.kode AS kode_kecamatan, c.nama AS nama_kecamatan,
       k.kode AS kode_kabupaten, k.nama AS nama_kabupaten,
       p.kode AS kode_provinsi, p.nama AS nama_provinsi
FROM ref.desa d
JOIN ref.kecamatan c ON c.kode = d.kecamatan_kode
JOIN ref.kabupaten k ON k.kode = c.kabupaten_kode
JOIN ref.provinsi p ON p.kode = k.provinsi_kode;
