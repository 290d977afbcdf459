-- What applying an extract's differences did (sql/ingest/dukcapil_write.sql), counted from the
-- temporary tables of the comparison; kept with the snapshot as ingest.dukcapil_snapshot.diff.

-- name: summary
SELECT count(*) FILTER (WHERE u.line_no IS NOT NULL AND NOT d.was_current) AS new,
       count(*) FILTER (WHERE u.line_no IS NOT NULL AND d.was_current) AS changed,
       count(*) FILTER (WHERE d.rec IS NULL) AS vanished,
       count(*) FILTER (WHERE d.rec IS NOT NULL AND u.line_no IS NULL AND c.nik IS NULL
                          AND NOT EXISTS (SELECT 1 FROM scratch_dukcapil.dk_usable o WHERE o.nik = d.nik)) AS unusable,
       count(*) FILTER (WHERE d.rec IS NOT NULL AND u.line_no IS NULL AND c.nik IS NULL
                          AND EXISTS (SELECT 1 FROM scratch_dukcapil.dk_usable o WHERE o.nik = d.nik)) AS identical_copies,
       count(DISTINCT c.nik) AS conflicting,
       count(*) FILTER (WHERE c.nik IS NOT NULL) AS conflicting_lines,
       count(DISTINCT d.nik) FILTER (WHERE d.was_current AND c.nik IS NULL) AS closed
FROM scratch_dukcapil.dk_diff d
LEFT JOIN scratch_dukcapil.dk_usable u ON u.line_no = d.line_no
LEFT JOIN scratch_dukcapil.dk_conflict c ON c.nik = d.nik
WHERE NOT d.blank;
