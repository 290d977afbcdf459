-- Verification cases a round opens and closes (src/dtsen/cases/rounds.py), set-based: the flags of each
-- enabled origin are gathered in case_flag, then one statement opens a case for every flagged family
-- without a live case (OPEN, ASSIGNED, VISITED), one adds each flag as a reason to the family's live case
-- (a family flagged by several origins is one visit with several reasons) and makes it as urgent as its
-- most urgent reason. A flag is raised once: a family whose case already closed (resolved or expired)
-- with the same reason since the flag began is not flagged again until the flag begins anew.
-- Parameters: %(round_seq)s, and per origin its priority, due date and what it reads.

-- name: reset
DROP TABLE IF EXISTS pg_temp.case_flag;
DROP TABLE IF EXISTS pg_temp.case_result;
DROP TABLE IF EXISTS pg_temp.aduan_row;

-- name: flags
CREATE TEMP TABLE case_flag (
    no_kk       bigint NOT NULL,
    origin      text NOT NULL,
    detail      text NOT NULL,
    priority    smallint NOT NULL,
    due_date    date NOT NULL,
    since_round smallint NOT NULL, -- when the flag began: a case closed since then settled it
    kode_wilayah text,             -- a proposed family not in the registry: the village it lives in
    raised      integer NOT NULL DEFAULT 1  -- identical objections of the round, counted once
) ON COMMIT DROP;

-- The published version's implausible recipients, one flag per rule; a rule's flag begins with the
-- version whose candidate first found the family implausible.
-- name: implausible
INSERT INTO case_flag
SELECT i.no_kk, 'implausible', i.rule, %(priority)s, %(due_date)s, v.round_seq
FROM publish.implausible i
JOIN publish.version v ON v.version = i.valid_from
WHERE i.version = %(version)s;

-- The families behind this round's split-surge flags (a village's or an account's), as
-- sql/integrity/splits.sql lists them for Kemensos, one flag per scope and metric.
-- name: split_surge
INSERT INTO case_flag
SELECT DISTINCT fam.no_kk, 'split_surge', flag.scope || ':' || flag.metric, %(priority)s, %(due_date)s,
       %(round_seq)s
FROM quality.integrity_flag flag
JOIN quality.integrity_family fam ON fam.round_seq = flag.round_seq
WHERE flag.round_seq = %(round_seq)s
  AND CASE flag.scope WHEN 'DESA' THEN fam.kode_wilayah = flag.key ELSE fam.submitted_by = flag.key END
  AND CASE flag.metric WHEN 'split' THEN fam.split ELSE fam.members <= %(small_family_max_members)s END;

-- Open families neither updated nor verified (a field result updates a family too) for `rounds`
-- rounds, the longest-stale first, at most `max_per_round` (0: all) not settled since.
-- name: stale
INSERT INTO case_flag
SELECT f.no_kk, 'stale', 'rounds:' || %(rounds)s::int, %(priority)s, %(due_date)s, f.updated_round
FROM registry.family f
WHERE f.is_open AND f.updated_round <= %(round_seq)s - %(rounds)s::int
  AND NOT EXISTS (
      SELECT 1 FROM cases.verification_case c
      JOIN cases.case_reason r ON r.id_kasus = c.id_kasus AND r.origin = 'stale'
      WHERE c.no_kk = f.no_kk AND (c.state IN ('OPEN', 'ASSIGNED', 'VISITED') OR c.closed_round >= f.updated_round))
ORDER BY f.updated_round, f.no_kk
LIMIT nullif(%(max_per_round)s::int, 0);

-- This round's merged objections and proposals (aduan.csv), each with its subject family: the no_kk
-- given, else the family its nik belongs to (validation made sure there is one).
-- name: aduan_rows
CREATE TEMP TABLE aduan_row ON COMMIT DROP AS
SELECT s.submission_pk, s.line_no, s.jenis, s.alasan, s.program, meta.to_date_or_null(s.tanggal_aduan) AS tanggal_aduan,
       s.pelapor_ref, s.kode_wilayah,
       coalesce(CASE WHEN s.no_kk ~ '^[0-9]{16}$' THEN s.no_kk::bigint END, m.no_kk) AS no_kk
FROM staging.aduan s
JOIN ingest.submission sub ON sub.submission_pk = s.submission_pk AND sub.status = 'MERGED'
LEFT JOIN registry.membership m
       ON m.nik = CASE WHEN s.nik ~ '^[0-9]{16}$' THEN s.nik::bigint END AND m.valid_to_round IS NULL
WHERE s.round_seq = %(round_seq)s
  AND NOT EXISTS (SELECT 1 FROM quality.rejection q WHERE q.round_seq = s.round_seq
                  AND q.submission_pk = s.submission_pk AND q.file_name = 'aduan.csv' AND q.line_no = s.line_no);

-- One flag per family and reason (the program and the reason code) of the objections (%(jenis)s =
-- 'SANGGAH', origin sanggah) or proposals ('USUL', origin usul): identical ones counted, not repeated.
-- name: aduan
INSERT INTO case_flag (no_kk, origin, detail, priority, due_date, since_round, kode_wilayah, raised)
SELECT no_kk, lower(jenis), coalesce(program || ':', '') || alasan, %(priority)s, %(due_date)s, %(round_seq)s,
       min(kode_wilayah), count(*)
FROM aduan_row
WHERE jenis = %(jenis)s AND no_kk IS NOT NULL
GROUP BY no_kk, jenis, program, alasan;

-- Flags already settled: the family's case with this reason closed since the flag began (an objection
-- or proposal is new each time: never settled). Flags of families no longer in the registry go too
-- (nobody to visit), but for a proposed family not registered yet, whose village the proposal gives.
-- name: settled
DELETE FROM case_flag f
WHERE f.origin NOT IN ('sanggah', 'usul') AND EXISTS (
    SELECT 1 FROM cases.verification_case c
    JOIN cases.case_reason r ON r.id_kasus = c.id_kasus AND r.origin = f.origin AND r.detail = f.detail
    WHERE c.no_kk = f.no_kk AND c.state IN ('RESOLVED', 'EXPIRED') AND c.closed_round >= f.since_round)
   OR (f.kode_wilayah IS NULL
       AND NOT EXISTS (SELECT 1 FROM registry.family fam WHERE fam.no_kk = f.no_kk AND fam.is_open));

-- name: index_flags
CREATE INDEX ON case_flag (no_kk);
ANALYZE case_flag;

-- A case for every flagged family without a live one, in its village (a proposed family's, when it is
-- not registered), as urgent as its most urgent flag, of the type of its weightiest origin (an
-- objection, then a proposal, then the pipeline's flags); its opening recorded.
-- name: open
WITH opened AS (
    INSERT INTO cases.verification_case (case_type, no_kk, kode_wilayah, priority, due_date, opened_round)
    SELECT CASE WHEN bool_or(f.origin = 'sanggah') THEN 'SANGGAH' WHEN bool_or(f.origin = 'usul') THEN 'USUL'
                ELSE 'VERIFIKASI' END,
           f.no_kk, coalesce(fam.kode_wilayah, min(f.kode_wilayah)), min(f.priority), min(f.due_date), %(round_seq)s
    FROM case_flag f
    LEFT JOIN registry.family fam ON fam.no_kk = f.no_kk AND fam.is_open
    WHERE NOT EXISTS (SELECT 1 FROM cases.verification_case c
                      WHERE c.no_kk = f.no_kk AND c.state IN ('OPEN', 'ASSIGNED', 'VISITED'))
    GROUP BY f.no_kk, fam.kode_wilayah
    ORDER BY f.no_kk
    RETURNING id_kasus, no_kk
)
INSERT INTO cases.case_transition (id_kasus, from_state, to_state, round_seq, decided_by, why)
SELECT o.id_kasus, NULL, 'OPEN', %(round_seq)s, 'system',
       'opened: ' || string_agg(DISTINCT f.origin || ' ' || f.detail, ', ' ORDER BY f.origin || ' ' || f.detail)
FROM opened o JOIN case_flag f ON f.no_kk = o.no_kk
GROUP BY o.id_kasus;

-- Every flag a reason of its family's live case. A reason it already has stays as it was, but an
-- objection or proposal raised again counts: `raised` adds this round's identical ones.
-- name: reasons
INSERT INTO cases.case_reason AS r (id_kasus, origin, detail, round_seq, raised)
SELECT c.id_kasus, f.origin, f.detail, %(round_seq)s, f.raised
FROM case_flag f
JOIN cases.verification_case c ON c.no_kk = f.no_kk AND c.state IN ('OPEN', 'ASSIGNED', 'VISITED')
ON CONFLICT (id_kasus, origin, detail) DO UPDATE SET raised = r.raised + EXCLUDED.raised
WHERE r.origin IN ('sanggah', 'usul');

-- A live case joined by a more urgent reason becomes as urgent.
-- name: urgency
UPDATE cases.verification_case c
SET priority = least(c.priority, f.priority), due_date = least(c.due_date, f.due_date)
FROM (SELECT no_kk, min(priority) AS priority, min(due_date) AS due_date FROM case_flag GROUP BY no_kk) f
WHERE c.no_kk = f.no_kk AND c.state IN ('OPEN', 'ASSIGNED')
  AND (f.priority < c.priority OR f.due_date < c.due_date);

-- A live case joined by an objection is an objection's case, by a proposal (and no objection) a
-- proposal's: the work list says what the visit answers.
-- name: case_type
UPDATE cases.verification_case c
SET case_type = CASE WHEN f.sanggah THEN 'SANGGAH' ELSE 'USUL' END
FROM (SELECT no_kk, bool_or(origin = 'sanggah') AS sanggah FROM case_flag
      WHERE origin IN ('sanggah', 'usul') GROUP BY no_kk) f
WHERE c.no_kk = f.no_kk AND c.state IN ('OPEN', 'ASSIGNED', 'VISITED')
  AND c.case_type <> 'SANGGAH' AND c.case_type <> CASE WHEN f.sanggah THEN 'SANGGAH' ELSE 'USUL' END;

-- Each merged objection and proposal with the live case of its family that answers it (NULL: its type
-- opens no case, %(linked)s lists those that do; or the family left the registry this round): what
-- the channel and the region are told of it, round after round, until the case closes.
-- name: link_aduan
INSERT INTO cases.aduan (submission_pk, line_no, round_seq, jenis, alasan, program, no_kk, tanggal_aduan,
                         pelapor_ref, id_kasus)
SELECT a.submission_pk, a.line_no, %(round_seq)s, a.jenis, a.alasan, a.program, a.no_kk, a.tanggal_aduan,
       a.pelapor_ref, c.id_kasus
FROM aduan_row a
LEFT JOIN cases.verification_case c
       ON c.no_kk = a.no_kk AND c.state IN ('OPEN', 'ASSIGNED', 'VISITED') AND a.jenis = ANY(%(linked)s::text[])
WHERE a.no_kk IS NOT NULL
ON CONFLICT (submission_pk, line_no) DO NOTHING;

-- The round's flags per origin (after the settled ones went).
-- name: counts
SELECT origin, count(*) AS flags, count(DISTINCT no_kk) AS families FROM case_flag GROUP BY origin ORDER BY origin;

-- This round's merged Kemensos field results of families with a live case: the case a row names
-- (id_kasus, checked by the validation's case_results rule), else the family's live case; a family's
-- latest visit counts. Rows rejected (a bad value, CASE_UNKNOWN, CONFLICT_LOST) are not results.
-- name: results
CREATE TEMP TABLE case_result ON COMMIT DROP AS
SELECT DISTINCT ON (c.id_kasus) c.id_kasus, c.state, s.hasil, s.layak, s.tanggal_kunjungan,
       CASE s.hasil WHEN 'DITEMUKAN' THEN CASE WHEN s.layak = '0' THEN 'CORRECTED' ELSE 'CONFIRMED' END
                    WHEN 'TIDAK_DITEMUKAN' THEN 'NOT_FOUND' WHEN 'PINDAH' THEN 'MOVED'
                    WHEN 'MENINGGAL' THEN 'DECEASED' END AS outcome
FROM staging.kemensos_groundcheck s
JOIN ingest.submission sub ON sub.submission_pk = s.submission_pk AND sub.status = 'MERGED'
JOIN cases.verification_case c
  ON c.no_kk = CASE WHEN s.no_kk ~ '^[0-9]{16}$' THEN s.no_kk::bigint END
 AND c.state IN ('OPEN', 'ASSIGNED', 'VISITED')
WHERE s.round_seq = %(round_seq)s
  AND NOT EXISTS (SELECT 1 FROM quality.rejection q WHERE q.round_seq = s.round_seq
                  AND q.submission_pk = s.submission_pk AND q.file_name = 'groundcheck.csv' AND q.line_no = s.line_no)
ORDER BY c.id_kasus, s.tanggal_kunjungan DESC, s.submission_pk DESC, s.line_no DESC;

-- Without statistics the planner takes the fresh table for tiny and joins it by nested loops into the
-- update below (2 s for 10,000 results at 1M persons).
-- name: index_results
CREATE INDEX ON case_result (id_kasus);
ANALYZE case_result;

-- Each result's case: VISITED (the visit arrived), then RESOLVED with the outcome its hasil implies
-- (the family's aid follows the ground-check path of the merge, not the case); both transitions kept.
-- name: resolve
WITH resolved AS (
    UPDATE cases.verification_case c
    SET state = 'RESOLVED', outcome = r.outcome, closed_round = %(round_seq)s
    FROM case_result r WHERE c.id_kasus = r.id_kasus
    RETURNING c.id_kasus
), moves AS (
    SELECT r.id_kasus, r.state AS from_state, 'VISITED' AS to_state, 1 AS n,
           'field result of ' || r.tanggal_kunjungan || ': hasil ' || r.hasil || ', layak ' || coalesce(r.layak, '-') AS why
    FROM case_result r JOIN resolved USING (id_kasus) WHERE r.state <> 'VISITED'
    UNION ALL
    SELECT r.id_kasus, 'VISITED', 'RESOLVED', 2, 'outcome ' || r.outcome
    FROM case_result r JOIN resolved USING (id_kasus)
)
INSERT INTO cases.case_transition (id_kasus, from_state, to_state, round_seq, decided_by, why)
SELECT id_kasus, from_state, to_state, %(round_seq)s, 'system', why FROM moves ORDER BY id_kasus, n;

-- name: outcomes
SELECT outcome, count(*) FROM case_result GROUP BY outcome ORDER BY outcome;

-- Cases whose due date passed without a field result (OPEN or ASSIGNED; a VISITED one has its result)
-- are EXPIRED, each with its transition. %(as_of)s: the round's reference date, or a person's date.
-- name: expire
WITH due AS (
    SELECT id_kasus, state FROM cases.verification_case
    WHERE state IN ('OPEN', 'ASSIGNED') AND due_date < %(as_of)s
    FOR UPDATE
), expired AS (
    UPDATE cases.verification_case c SET state = 'EXPIRED', closed_round = %(round_seq)s
    FROM due WHERE c.id_kasus = due.id_kasus
    RETURNING c.id_kasus, due.state AS was, c.due_date
)
INSERT INTO cases.case_transition (id_kasus, from_state, to_state, round_seq, decided_by, why)
SELECT id_kasus, was, 'EXPIRED', %(transition_round)s, %(decided_by)s,
       'due ' || due_date || ', no field result by ' || %(as_of)s::date
FROM expired;

-- Regencies whose field teams missed more than %(share)s of the cases due before %(as_of)s: of the
-- regency's cases due by then, the share that expired without a field result.
-- name: overdue_regions
SELECT left(kode_wilayah, 4) AS kode, count(*) AS due, count(*) FILTER (WHERE state = 'EXPIRED') AS expired
FROM cases.verification_case
WHERE due_date < %(as_of)s
GROUP BY 1
HAVING count(*) FILTER (WHERE state = 'EXPIRED') > %(share)s * count(*)
ORDER BY 1;
