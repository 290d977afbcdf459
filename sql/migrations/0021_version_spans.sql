-- A version is stored as what changed since the one before it, not as a full copy of the registry.
-- Each row of publish.keluarga_span / anggota_span / recipient_span holds for the versions
-- valid_from <= v < valid_to (valid_to NULL: still holds in the newest version). Building version N
-- closes the rows that differ from N's and opens N's rows beside them, so a quarter that changed 3%
-- of families writes about 3% of a copy.
--
-- The old names stay as views with one row per (version, record), so "version N" still reads
-- `publish.anggota WHERE version = N`: one query, by the key's index for one person or one family.
-- Constraints hold what the audit no longer scans: one current row per NIK, per family and per
-- (program, NIK).

CREATE TABLE publish.keluarga_span (LIKE publish.keluarga INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
CREATE TABLE publish.anggota_span (LIKE publish.anggota INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
CREATE TABLE publish.recipient_span (LIKE publish.recipient INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE publish.keluarga_span ADD COLUMN valid_from integer, ADD COLUMN valid_to integer;
ALTER TABLE publish.anggota_span ADD COLUMN valid_from integer, ADD COLUMN valid_to integer;
ALTER TABLE publish.recipient_span ADD COLUMN valid_from integer, ADD COLUMN valid_to integer;

-- Fold the per-version copies into spans: a record's consecutive versions with the same content are
-- one span (gaps and islands over the version number).
CREATE FUNCTION pg_temp.fold(p_table text, p_key text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($f$
        WITH r AS (SELECT t.version, %2$s AS k, md5((to_jsonb(t) - 'version')::text) AS h FROM publish.%1$I t),
        g AS (SELECT r.*, CASE WHEN lag(version) OVER w = version - 1 AND lag(h) OVER w = h THEN 0 ELSE 1 END AS brk
              FROM r WINDOW w AS (PARTITION BY k ORDER BY version)),
        i AS (SELECT g.*, sum(brk) OVER (PARTITION BY k ORDER BY version) AS island FROM g),
        s AS (SELECT k, min(version) AS first_version, max(version) AS last_version FROM i GROUP BY k, island)
        INSERT INTO publish.%3$I
        SELECT t.*, s.first_version,
               CASE WHEN s.last_version = (SELECT max(version) FROM publish.version) THEN NULL
                    ELSE s.last_version + 1 END
        FROM s JOIN publish.%1$I t ON %2$s = s.k AND t.version = s.first_version
    $f$, p_table, p_key, p_table || '_span');
END $$;
SELECT pg_temp.fold('keluarga', 'row(t.no_kk)');
SELECT pg_temp.fold('anggota', 'row(t.nik)');
SELECT pg_temp.fold('recipient', 'row(t.program, t.nik)');

DROP VIEW publish.recipient_current;
DROP VIEW publish.recipient_published CASCADE;  -- and the per-program views (recreated below)
DROP TABLE publish.keluarga, publish.anggota, publish.recipient;
DROP FUNCTION publish.ensure_version_partitions(integer);

ALTER TABLE publish.keluarga_span DROP COLUMN version;
ALTER TABLE publish.anggota_span DROP COLUMN version;
ALTER TABLE publish.recipient_span DROP COLUMN version;
ALTER TABLE publish.keluarga_span ALTER COLUMN valid_from SET NOT NULL;
ALTER TABLE publish.anggota_span ALTER COLUMN valid_from SET NOT NULL;
ALTER TABLE publish.recipient_span ALTER COLUMN valid_from SET NOT NULL;
ALTER TABLE publish.keluarga_span ADD CHECK (valid_to IS NULL OR valid_to > valid_from);
ALTER TABLE publish.anggota_span ADD CHECK (valid_to IS NULL OR valid_to > valid_from);
ALTER TABLE publish.recipient_span ADD CHECK (valid_to IS NULL OR valid_to > valid_from);

ALTER TABLE publish.keluarga_span ADD PRIMARY KEY (no_kk, valid_from);
ALTER TABLE publish.anggota_span ADD PRIMARY KEY (nik, valid_from);
ALTER TABLE publish.recipient_span ADD PRIMARY KEY (program, nik, valid_from);
-- one current row per record: no duplicate NIK, family or recipient in the newest version (each
-- older version was the newest when it was built)
CREATE UNIQUE INDEX keluarga_span_current ON publish.keluarga_span (no_kk) WHERE valid_to IS NULL;
CREATE UNIQUE INDEX anggota_span_current ON publish.anggota_span (nik) WHERE valid_to IS NULL;
CREATE UNIQUE INDEX recipient_span_current ON publish.recipient_span (program, nik) WHERE valid_to IS NULL;
-- what changed between two versions: rows opened or closed in (a, b]
CREATE INDEX keluarga_span_opened ON publish.keluarga_span (valid_from);
CREATE INDEX keluarga_span_closed ON publish.keluarga_span (valid_to) WHERE valid_to IS NOT NULL;
CREATE INDEX anggota_span_opened ON publish.anggota_span (valid_from);
CREATE INDEX anggota_span_closed ON publish.anggota_span (valid_to) WHERE valid_to IS NOT NULL;
CREATE INDEX recipient_span_opened ON publish.recipient_span (valid_from);
CREATE INDEX recipient_span_closed ON publish.recipient_span (valid_to) WHERE valid_to IS NOT NULL;
-- a family's members in a version (re-scoring a family, explain) and its current recipients
CREATE INDEX anggota_span_family ON publish.anggota_span (no_kk, valid_from);
CREATE INDEX recipient_span_current_family ON publish.recipient_span (no_kk) WHERE valid_to IS NULL;
-- time alone changes a score or a decision: a birthday crossing an age in a rule, a BPS measurement
-- growing too old; both are date ranges looked up by index
CREATE INDEX anggota_span_current_birth ON publish.anggota_span (tanggal_lahir) WHERE valid_to IS NULL;
CREATE INDEX keluarga_span_current_survey ON publish.keluarga_span (tanggal_survei)
    WHERE valid_to IS NULL AND tanggal_survei IS NOT NULL;

-- "Valid in v" is written so that no partial index of the newest rows is tempting: a version is
-- read whole (a scan) or by key (the primary key or the family index, then this filter).
CREATE VIEW publish.keluarga AS
SELECT v.version, s.* FROM publish.version v
JOIN publish.keluarga_span s ON s.valid_from <= v.version AND coalesce(s.valid_to, 2147483647) > v.version;
CREATE VIEW publish.anggota AS
SELECT v.version, s.* FROM publish.version v
JOIN publish.anggota_span s ON s.valid_from <= v.version AND coalesce(s.valid_to, 2147483647) > v.version;
CREATE VIEW publish.recipient AS
SELECT v.version, s.* FROM publish.version v
JOIN publish.recipient_span s ON s.valid_from <= v.version AND coalesce(s.valid_to, 2147483647) > v.version;

CREATE VIEW publish.recipient_published AS
SELECT r.version, r.program, r.nik, r.no_kk, r.kode_wilayah, r.desil, r.prioritas
FROM publish.recipient r
JOIN publish.version v ON v.version = r.version AND v.status IN ('PUBLISHED', 'SUPERSEDED');

CREATE VIEW publish.recipient_current AS
SELECT r.* FROM publish.recipient_published r WHERE r.version = (SELECT version FROM publish.current_version);

DO $$
DECLARE
    p text;
BEGIN
    FOR p IN SELECT DISTINCT jsonb_object_keys(programs) FROM publish.version
             WHERE status IN ('PUBLISHED', 'SUPERSEDED') AND programs IS NOT NULL LOOP
        EXECUTE format('CREATE OR REPLACE VIEW publish.%I AS SELECT version, nik, no_kk, kode_wilayah, desil, '
                       'prioritas FROM publish.recipient_published WHERE program = %L', 'recipient_' || p, p);
    END LOOP;
END $$;

-- Recipients per version, program and regency: the drift audit compares these counts instead of
-- counting two versions' recipients. A version's counts are its predecessor's plus what it opened
-- minus what it closed.
CREATE TABLE publish.recipient_count (
    version         integer NOT NULL REFERENCES publish.version,
    program         text NOT NULL,
    kode_kabupaten  text NOT NULL,
    recipients      bigint NOT NULL,
    PRIMARY KEY (version, program, kode_kabupaten)
);
INSERT INTO publish.recipient_count
SELECT version, program, left(kode_wilayah, 4), count(*) FROM publish.recipient GROUP BY 1, 2, 3;

-- What a version was built from: a hash of every rule text that turns the registry into scores and
-- recipients (ranking model, program rules, the SQL that evaluates them). A version whose inputs
-- equal its predecessor's is built from what changed since; otherwise every family is re-scored.
ALTER TABLE publish.version ADD COLUMN rank_inputs text;
ALTER TABLE publish.version ADD COLUMN build jsonb;  -- how it was built: incremental or full, and counts

-- What each round's merge touched, kept: the next candidate re-scores these families and persons.
CREATE TABLE registry.round_touched (
    round_seq  smallint NOT NULL,
    entity     char(1) NOT NULL CHECK (entity IN ('F', 'P')),
    key        bigint NOT NULL,
    PRIMARY KEY (round_seq, entity, key)
);
-- Rounds merged before this table existed did not record it: a candidate after them is built whole.
ALTER TABLE ingest.round ADD COLUMN touched_recorded boolean NOT NULL DEFAULT false;
