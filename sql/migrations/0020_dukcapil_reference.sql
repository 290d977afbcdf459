-- Dukcapil by difference: one typed civil-registry reference keyed by NIK, with validity ranges by
-- snapshot, instead of a full typed copy of every quarterly extract. A new extract is compared with
-- the current reference (a row hash per NIK); only new, changed, vanished and unusable NIKs are
-- written (ref.dukcapil_change) and validated row by row. Reading "the reference as of snapshot S"
-- stays one indexed query (ref.dukcapil_as_of, inlined by the planner).

-- An extract line's fields, hashed (64 bits: a changed row passes for unchanged with odds of 2^-64).
-- Typed values render back to the text they were read from for every well-formed row, so a
-- reference row's hash equals that of the extract line it came from. NULL and '' hash alike (staging
-- reads both as empty). Only immutable operators (|| and coalesce, not the stable concat()), so the
-- planner inlines it: a call per row would cost five times as much.
CREATE FUNCTION ref.dukcapil_row_hash(nik text, no_kk text, nama text, jenis_kelamin text, tanggal_lahir text,
                                      kode_wilayah text, status_hidup text, tanggal_meninggal text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended(coalesce(nik, '') || E'\x1f' || coalesce(no_kk, '') || E'\x1f' || coalesce(nama, '')
                            || E'\x1f' || coalesce(jenis_kelamin, '') || E'\x1f' || coalesce(tanggal_lahir, '')
                            || E'\x1f' || coalesce(kode_wilayah, '') || E'\x1f' || coalesce(status_hidup, '')
                            || E'\x1f' || coalesce(tanggal_meninggal, ''), 0)
$$;

-- A NIK as the reference's key: 16 digits, else NULL (such a line is unusable whatever else it holds).
CREATE FUNCTION ref.nik_key(nik text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN length(nik) = 16 AND ltrim(nik, '0123456789') = '' THEN nik::bigint END
$$;

-- One row per NIK and period of unchanged content: valid from the snapshot that brought it, until the
-- snapshot that changed, removed or invalidated it (NULL: current).
CREATE TABLE ref.dukcapil (
    nik               bigint NOT NULL,
    -- snapshot_pk values written by the loader itself (no foreign key: a first national load would
    -- pay one referential check per row, 289M of them)
    valid_from        integer NOT NULL,
    valid_to          integer,
    no_kk             bigint,
    nama              text NOT NULL,
    jenis_kelamin     smallint NOT NULL,
    tanggal_lahir     date NOT NULL,
    kode_wilayah      text,
    status_hidup      text NOT NULL CHECK (status_hidup IN ('HIDUP', 'MENINGGAL')),
    tanggal_meninggal date,
    row_hash          bigint NOT NULL,
    PRIMARY KEY (nik, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
-- at most one current row per NIK: the reference never holds two truths for one person
CREATE UNIQUE INDEX dukcapil_current_nik ON ref.dukcapil (nik) WHERE valid_to IS NULL;

-- The reference as it stood at snapshot p (no rows for NULL). A single-SELECT SQL function: the
-- planner inlines it, so `JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d ON d.nik = ...` probes the key.
CREATE FUNCTION ref.dukcapil_as_of(p integer) RETURNS SETOF ref.dukcapil
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT * FROM ref.dukcapil WHERE valid_from <= p AND (valid_to IS NULL OR valid_to > p)
$$;

-- The typed snapshots loaded so far, folded into validity ranges: a NIK's consecutive snapshots with
-- the same content are one range; a snapshot without it (or with other content) ends the range.
WITH snaps AS (
    SELECT snapshot_pk, lag(snapshot_pk) OVER w AS prev_pk, lead(snapshot_pk) OVER w AS next_pk
    FROM ingest.dukcapil_snapshot
    WINDOW w AS (ORDER BY snapshot_pk)
), hashed AS (
    SELECT d.*, s.prev_pk, s.next_pk,
           ref.dukcapil_row_hash(d.nik::text, d.no_kk::text, d.nama, d.jenis_kelamin::text,
                                 d.tanggal_lahir::text, d.kode_wilayah, d.status_hidup,
                                 d.tanggal_meninggal::text) AS row_hash
    FROM ref.dukcapil_penduduk d JOIN snaps s USING (snapshot_pk)
), marked AS (
    SELECT h.*,
           (lag(h.snapshot_pk) OVER w IS DISTINCT FROM h.prev_pk OR h.prev_pk IS NULL
            OR lag(h.row_hash) OVER w <> h.row_hash) AS starts
    FROM hashed h
    WINDOW w AS (PARTITION BY h.nik ORDER BY h.snapshot_pk)
), ranges AS (
    SELECT m.*, sum(m.starts::int) OVER (PARTITION BY m.nik ORDER BY m.snapshot_pk) AS period
    FROM marked m
)
INSERT INTO ref.dukcapil (nik, valid_from, valid_to, no_kk, nama, jenis_kelamin, tanggal_lahir, kode_wilayah,
                          status_hidup, tanggal_meninggal, row_hash)
SELECT nik, min(snapshot_pk), (array_agg(next_pk ORDER BY snapshot_pk DESC))[1],
       (array_agg(no_kk))[1], (array_agg(nama))[1], (array_agg(jenis_kelamin))[1], (array_agg(tanggal_lahir))[1],
       (array_agg(kode_wilayah))[1], (array_agg(status_hidup))[1], (array_agg(tanggal_meninggal))[1],
       (array_agg(row_hash))[1]
FROM ranges
GROUP BY nik, period;

-- The change rows of a snapshot against the reference it was compared with: NEW and CHANGED carry the
-- new typed values (what the merge reads), VANISHED and UNUSABLE close a NIK's range. line_no is the
-- extract's line (NULL for VANISHED): those lines are the ones validated row by row.
ALTER TABLE ref.dukcapil_change
    ADD COLUMN change text NOT NULL DEFAULT 'CHANGED'
        CHECK (change IN ('NEW', 'CHANGED', 'VANISHED', 'UNUSABLE')),
    ADD COLUMN line_no integer;
ALTER TABLE ref.dukcapil_change ALTER COLUMN change DROP DEFAULT;
ALTER TABLE ref.dukcapil_change DROP CONSTRAINT dukcapil_change_pkey;
ALTER TABLE ref.dukcapil_change ALTER COLUMN nik DROP NOT NULL;
ALTER TABLE ref.dukcapil_change ALTER COLUMN nama DROP NOT NULL;
ALTER TABLE ref.dukcapil_change ALTER COLUMN jenis_kelamin DROP NOT NULL;
ALTER TABLE ref.dukcapil_change ALTER COLUMN tanggal_lahir DROP NOT NULL;
ALTER TABLE ref.dukcapil_change ALTER COLUMN status_hidup DROP NOT NULL;
ALTER TABLE ref.dukcapil_change ADD CONSTRAINT dukcapil_change_values CHECK (
    change NOT IN ('NEW', 'CHANGED')
    OR (nik IS NOT NULL AND nama IS NOT NULL AND jenis_kelamin IS NOT NULL AND tanggal_lahir IS NOT NULL
        AND status_hidup IS NOT NULL));
CREATE UNIQUE INDEX dukcapil_change_nik ON ref.dukcapil_change (snapshot_pk, nik) WHERE change <> 'UNUSABLE';
CREATE INDEX dukcapil_change_line ON ref.dukcapil_change (snapshot_pk, line_no);

-- What loading a snapshot found, kept with it (whole-extract checks are aggregates).
ALTER TABLE ingest.dukcapil_snapshot
    ADD COLUMN rows_kept bigint,
    ADD COLUMN diff jsonb;
UPDATE ingest.dukcapil_snapshot s
SET rows_kept = (SELECT count(*) FROM ref.dukcapil_penduduk d WHERE d.snapshot_pk = s.snapshot_pk);

-- No typed copy per quarter any more.
DROP VIEW ref.dukcapil_terkini;
DROP TABLE ref.dukcapil_penduduk;
CREATE OR REPLACE FUNCTION staging.ensure_snapshot_partitions(p_snapshot_pk integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS staging.%I PARTITION OF staging.dukcapil_penduduk FOR VALUES IN (%s)',
                   'dukcapil_penduduk_s' || p_snapshot_pk, p_snapshot_pk);
END $$;

-- Staging copies follow a retention setting (dtsen.ingest.retention); when one was dropped is kept.
ALTER TABLE ingest.round ADD COLUMN staging_pruned_at timestamptz;
ALTER TABLE ingest.dukcapil_snapshot ADD COLUMN staging_pruned_at timestamptz;
