-- What adopting a model would change in a published version (dtsen.model.impact): its families scored
-- with the model (a recent BPS measurement still replaces the prediction, as in the ranking), ordered
-- into national desil as sql/publish/candidate.sql does, and compared with the version's own desil and
-- recipients. Aggregates only leave: counts per regency and per program.
-- Parameters: %(version)s, %(reference_date)s, %(snapshot_pk)s.

-- (impact_scores, generated from the model: CREATE TEMP TABLE impact_score (no_kk, skor, jumlah_anggota))

-- name: impact_desil
CREATE TEMP TABLE impact_desil ON COMMIT DROP AS
SELECT no_kk, least(10, 1 + floor(10 * (before::numeric / total)))::smallint AS desil
FROM (
    SELECT no_kk,
           sum(jumlah_anggota) OVER (ORDER BY skor, no_kk ROWS UNBOUNDED PRECEDING) - jumlah_anggota AS before,
           sum(jumlah_anggota) OVER () AS total
    FROM impact_score
) s;
CREATE UNIQUE INDEX ON impact_desil (no_kk);
ANALYZE impact_desil;

-- name: per_regency
SELECT left(k.kode_wilayah, 4) AS regency, max(kab.nama) AS name, count(*) AS families,
       count(*) FILTER (WHERE k.desil > 5 AND d.desil <= 5) AS entering,
       count(*) FILTER (WHERE k.desil <= 5 AND d.desil > 5) AS leaving,
       coalesce(sum(k.jumlah_anggota) FILTER (WHERE k.desil > 5 AND d.desil <= 5), 0) AS individuals_entering,
       coalesce(sum(k.jumlah_anggota) FILTER (WHERE k.desil <= 5 AND d.desil > 5), 0) AS individuals_leaving,
       count(*) FILTER (WHERE k.desil <> d.desil) AS desil_moved
FROM publish.keluarga k
JOIN impact_desil d ON d.no_kk = k.no_kk
LEFT JOIN ref.kabupaten kab ON kab.kode = left(k.kode_wilayah, 4)
WHERE k.version = %(version)s
GROUP BY left(k.kode_wilayah, 4)
ORDER BY regency;

-- (impact_context, generated: the version's eligibility context; then its desil is the model's)
-- name: reorder_context
UPDATE impact_context c SET desil = d.desil FROM impact_desil d WHERE d.no_kk = c.no_kk AND c.desil <> d.desil;
