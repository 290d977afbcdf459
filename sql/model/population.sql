-- The whole population of a version scored by several ranking models in one pass
-- (src/dtsen/model/evaluate.py), and each model's national desil thresholds over it. The score table
-- model_population (no_kk, w = jumlah_anggota, one column r_<i> per model: the score the ranking would
-- give, a recent BPS measurement overriding the model's prediction as in publish/candidate.py's
-- rank_statement) is made by the feature query over these two relations; model/thresholds.sql
-- orders it. Parameter: %(version)s.

-- name: reset
DROP TABLE IF EXISTS pg_temp.model_population;

-- The version's families and members, exactly the rows it was ranked from.
-- name: families
SELECT * FROM publish.keluarga WHERE version = %(version)s;

-- name: members
SELECT * FROM publish.anggota WHERE version = %(version)s;

-- name: reference_date
SELECT reference_date FROM publish.version WHERE version = %(version)s;
