-- What applying an extract's differences did (sql/ingest/dukcapil_apply.sql), counted from the
-- temporary tables of the comparison; kept with the snapshot as ingest.dukcapil_snapshot.diff.

-- name: summary
SELECT count(*) FILTER (WHERE u.line_no IS NOT NULL AND NOT d.was_current) AS new,
       count(*) FILTER (WHERE u.line_no IS NOT NULL AND d.was_current) AS changed,
       count(*) FILTER (WHERE d.rec IS NULL) AS vanished,
       count(*) FILTER (WHERE d.rec IS NOT NULL AND u.line_no IS NULL) AS unusable,
       count(*) FILTER (WHERE d.nik IN (SELECT nik FROM dk_diff WHERE NOT blank AND rec IS NOT NULL
                                        GROUP BY nik HAVING count(*) > 1)) AS duplicated_lines,
       count(DISTINCT d.nik) FILTER (WHERE d.was_current) AS closed
FROM dk_diff d
LEFT JOIN dk_usable u ON u.line_no = d.line_no
WHERE NOT d.blank;
