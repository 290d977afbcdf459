-- What differs between two versions, read from the spans they opened and closed: a row valid in
-- %(version)s but not in %(previous)s was opened in (previous, version]; a row valid in previous but
-- not in version was closed in (previous, version]. Both are index range scans, so comparing two
-- versions costs what changed between them, not the size of either.

-- Recipients per program in %(version)s, and (program, NIK) pairs added and removed since %(previous)s
-- (-1 when none: then every recipient is added).
-- name: program_changes
WITH added AS (
    SELECT s.program, count(*) AS n FROM publish.recipient_span s
    WHERE s.valid_from > %(previous)s AND s.valid_from <= %(version)s AND (s.valid_to IS NULL OR s.valid_to > %(version)s)
      AND NOT EXISTS (SELECT 1 FROM publish.recipient_span p WHERE p.program = s.program AND p.nik = s.nik
                      AND p.valid_from <= %(previous)s AND (p.valid_to IS NULL OR p.valid_to > %(previous)s))
    GROUP BY 1
), removed AS (
    SELECT s.program, count(*) AS n FROM publish.recipient_span s
    WHERE s.valid_to > %(previous)s AND s.valid_to <= %(version)s AND s.valid_from <= %(previous)s
      AND NOT EXISTS (SELECT 1 FROM publish.recipient_span c WHERE c.program = s.program AND c.nik = s.nik
                      AND c.valid_from <= %(version)s AND (c.valid_to IS NULL OR c.valid_to > %(version)s))
    GROUP BY 1
), total AS (
    SELECT program, sum(recipients) AS n FROM publish.recipient_count WHERE version = %(version)s GROUP BY 1
)
SELECT coalesce(t.program, a.program, r.program) AS program, coalesce(t.n, 0), coalesce(a.n, 0), coalesce(r.n, 0)
FROM total t FULL JOIN added a ON a.program = t.program FULL JOIN removed r ON r.program = coalesce(t.program, a.program)
ORDER BY 1
