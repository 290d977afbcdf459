-- Every BPS measurement kept with its date (issue 25): registry.family holds only the latest
-- expenditure and survey date, and a BPS row without pengeluaran_per_kapita moves the date but keeps
-- the old expenditure. A calibrated welfare model learns from each measurement as it was taken: the
-- family, its survey date, its per-capita expenditure, and the round (and submission) that brought it.
-- One row per family and round (the merge keeps one BPS row per family per round); rows are written by
-- the merge (sql/merge/merge_round.sql, bps_measurements) and never changed.
CREATE TABLE registry.bps_measurement (
    no_kk                  bigint NOT NULL,
    tanggal_survei         date,
    pengeluaran_per_kapita bigint NOT NULL,
    round_seq              smallint NOT NULL,
    submission_pk          bigint,  -- NULL when backfilled and the measuring submission is not on record
    PRIMARY KEY (no_kk, round_seq)
);
CREATE INDEX bps_measurement_tanggal_survei ON registry.bps_measurement (tanggal_survei);

-- The round reads and appends (0030's default privileges give it every right on a new registry table;
-- granted here by name too, so a migration run by another owner gives the same). A measurement, once
-- recorded, stays.
GRANT SELECT, INSERT ON registry.bps_measurement TO dtsen_round;
REVOKE UPDATE, DELETE, TRUNCATE ON registry.bps_measurement FROM dtsen_round;

-- Backfill: the measurement each family holds now. Its round is the last round that set the family's
-- expenditure (registry.field_change), else the round that created the family with it; its survey date
-- is the family's tanggal_survei as that round left it (a later BPS row without expenditure may have
-- moved the date since: then the date before that move).
INSERT INTO registry.bps_measurement (no_kk, tanggal_survei, pengeluaran_per_kapita, round_seq, submission_pk)
SELECT f.no_kk,
       CASE WHEN d_set.found THEN d_set.tanggal
            WHEN d_moved.found THEN d_moved.tanggal
            ELSE f.tanggal_survei END,
       f.pengeluaran_per_kapita,
       coalesce(p.round_seq, f.created_round),
       p.submission_pk
FROM registry.family f
LEFT JOIN LATERAL (
    SELECT c.round_seq, c.submission_pk FROM registry.field_change c
    WHERE c.entity = 'F' AND c.entity_key = f.no_kk AND c.field = 'pengeluaran_per_kapita'
    ORDER BY c.round_seq DESC, c.changed_at DESC LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT true AS found, c.new_value::date AS tanggal FROM registry.field_change c
    WHERE c.entity = 'F' AND c.entity_key = f.no_kk AND c.field = 'tanggal_survei'
      AND c.round_seq <= coalesce(p.round_seq, f.created_round)
    ORDER BY c.round_seq DESC, c.changed_at DESC LIMIT 1
) d_set ON true
LEFT JOIN LATERAL (
    SELECT true AS found, c.old_value::date AS tanggal FROM registry.field_change c
    WHERE c.entity = 'F' AND c.entity_key = f.no_kk AND c.field = 'tanggal_survei'
      AND c.round_seq > coalesce(p.round_seq, f.created_round)
    ORDER BY c.round_seq, c.changed_at LIMIT 1
) d_moved ON true
WHERE f.pengeluaran_per_kapita IS NOT NULL;
