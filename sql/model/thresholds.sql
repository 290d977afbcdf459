-- A model's national desil thresholds over the population scored by model/population.sql
-- (src/dtsen/model/evaluate.py): {{ score }} is the column of model_population holding its scores.
-- Parameter: %(cutoffs)s.

-- One model's national thresholds, by the ranking's own rule (publish/candidate.sql assign_desil: one
-- person-weighted ordering of every family's score, ties by no_kk): the lowest score ranked above
-- desil d, for the cut-offs d. A family is in desil 1..d exactly when its score is below it.
-- name: thresholds
SELECT d.cutoff, min(s.skor) FILTER (WHERE s.desil > d.cutoff) AS threshold
FROM (
    SELECT skor, least(10, 1 + floor(10 * (before::numeric / total)))::smallint AS desil
    FROM (
        SELECT {{ score }} AS skor,
               sum(w) OVER (ORDER BY {{ score }}, no_kk ROWS UNBOUNDED PRECEDING) - w AS before,
               sum(w) OVER () AS total
        FROM model_population
    ) o
) s CROSS JOIN unnest(%(cutoffs)s::int[]) AS d(cutoff)
GROUP BY d.cutoff ORDER BY d.cutoff;
