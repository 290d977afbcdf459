-- The training data of a calibrated welfare model (src/dtsen/model/training.py): each family's latest
-- BPS measurement within a window before an as-of version's reference date, with the family as the
-- version of the measurement's round ranked it. Parameters: %(as_of_version)s, %(months)s.

-- name: reset
DROP TABLE IF EXISTS pg_temp.model_measured;
DROP TABLE IF EXISTS pg_temp.model_window;

-- Every measurement surveyed in the window (months before the as-of version's reference date) by a
-- round up to the as-of version's: a small share of the registry (BPS measures ~0.4% a year).
-- name: window
CREATE TEMP TABLE model_window ON COMMIT DROP AS
SELECT m.no_kk, m.tanggal_survei, m.pengeluaran_per_kapita, m.round_seq,
       row_number() OVER (PARTITION BY m.no_kk ORDER BY m.tanggal_survei DESC, m.round_seq DESC) AS nth
FROM registry.bps_measurement m
JOIN publish.version v ON v.version = %(as_of_version)s
WHERE m.round_seq <= v.round_seq
  AND m.tanggal_survei > v.reference_date - make_interval(months => %(months)s::int)
  AND m.pengeluaran_per_kapita > 0;

-- Each family's latest measurement in the window (a family measured twice counts once). Its round's
-- version (the newest not discarded) holds the family as it was ranked after that measurement's merge;
-- a round without one (a later round was merged before it was ranked) leaves version NULL: counted,
-- not used.
-- name: measured
CREATE TEMP TABLE model_measured ON COMMIT DROP AS
SELECT l.no_kk, l.tanggal_survei, l.pengeluaran_per_kapita, l.round_seq, v.version, v.reference_date
FROM model_window l
LEFT JOIN LATERAL (
    SELECT version, reference_date FROM publish.version
    WHERE round_seq = l.round_seq AND status <> 'DISCARDED' ORDER BY version DESC LIMIT 1
) v ON true
WHERE l.nth = 1;

-- The survey's noise: the families measured twice or more in the window, each by its latest two
-- measurements. Their log difference is the noise of two measurements (variance 2 sigma^2), plus what
-- really changed between the surveys: an upper bound.
-- name: repeated
SELECT count(*) AS pairs,
       var_samp(ln(a.pengeluaran_per_kapita::float8) - ln(b.pengeluaran_per_kapita::float8)) AS variance
FROM model_window a
JOIN model_window b ON b.no_kk = a.no_kk AND b.nth = 2
WHERE a.nth = 1;

-- name: index_measured
CREATE UNIQUE INDEX ON model_measured (no_kk);
ANALYZE model_measured;

-- The versions the measured families are read from (a few: one per round in the window).
-- name: versions
SELECT version, reference_date FROM model_measured WHERE version IS NOT NULL
GROUP BY version, reference_date ORDER BY version;

-- The families measured in one version's round, as that version holds them (by key, not a scan of
-- the version), with the measurement: the `families` relation of the feature query.
-- name: families
SELECT k.*, m.tanggal_survei AS survei_tanggal, m.pengeluaran_per_kapita AS survei_pengeluaran,
       m.round_seq AS survei_round
FROM model_measured m
JOIN publish.keluarga k ON k.no_kk = m.no_kk AND k.version = m.version
WHERE m.version = %(version)s;

-- Their members in that version: the `members` relation of the feature query.
-- name: members
SELECT a.* FROM model_measured m
JOIN publish.anggota a ON a.no_kk = m.no_kk AND a.version = m.version
WHERE m.version = %(version)s;

-- What the window held and what could not be used: measurements in it, of rounds never ranked, of
-- families missing from their round's version (closed, or without members), and the as-of version.
-- name: counts
SELECT (SELECT count(*) FROM model_measured) AS measured,
       (SELECT count(*) FROM model_measured WHERE version IS NULL) AS unranked,
       (SELECT count(*) FROM model_measured m WHERE m.version IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM publish.keluarga k JOIN publish.anggota a ON a.no_kk = k.no_kk AND a.version = k.version
            WHERE k.no_kk = m.no_kk AND k.version = m.version)) AS not_ranked,
       v.reference_date AS as_of
FROM publish.version v WHERE v.version = %(as_of_version)s;
