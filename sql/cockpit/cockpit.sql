-- The data-ops cockpit's reads (dtsen.cockpit.data). Aggregates only, never a NIK, a name or a row
-- of the registry; each reads summaries kept per round and per version (ingest.submission.ringkasan,
-- publish.version counts/programs/audit/manifest, publish.recipient_count), or the spans opened and
-- closed between two versions, so a page costs what the rounds and versions hold, not the registry.

-- name: rounds
-- Every round, newest first; its submissions are counted in dtsen.cockpit.data (one definition of an
-- outcome, shared with `dtsen report`).
SELECT r.round_id, r.status, r.created_at, r.merged_at, r.published_version,
       (SELECT count(*) FROM ingest.refused_entry e WHERE e.round_seq = r.round_seq) AS refused_entries
FROM ingest.round r
ORDER BY r.round_seq DESC;

-- name: submissions
-- Submissions of one round, of one region, or of every round (a NULL filter): processing state, reason,
-- the submission an identical resubmission repeats, and rows received / merged / rejected with their
-- reasons as its ringkasan.json told the region (NULL until that is written).
SELECT r.round_id, s.source, s.kode_wilayah, k.nama AS nama_wilayah, s.submission_id, s.status,
       s.reason_code, o.submission_id AS duplicate_of, orr.round_id AS duplicate_of_round,
       s.ringkasan IS NOT NULL AS has_ringkasan,
       (SELECT sum((f.value ->> 'received')::bigint) FROM jsonb_each(s.ringkasan -> 'rows') f) AS received,
       (SELECT sum((f.value ->> 'merged')::bigint) FROM jsonb_each(s.ringkasan -> 'rows') f) AS merged,
       (SELECT sum((f.value ->> 'rejected')::bigint) FROM jsonb_each(s.ringkasan -> 'rows') f) AS rejected,
       coalesce(s.ringkasan -> 'reasons', '{}') AS reasons
FROM ingest.submission s
JOIN ingest.round r ON r.round_seq = s.round_seq
LEFT JOIN ingest.submission o ON o.submission_pk = s.duplicate_of
LEFT JOIN ingest.round orr ON orr.round_seq = o.round_seq
LEFT JOIN ref.kabupaten k ON k.kode = s.kode_wilayah
WHERE (%(round_id)s::text IS NULL OR r.round_id = %(round_id)s)
  AND (%(kode)s::text IS NULL OR (s.source = 'pemda' AND s.kode_wilayah = %(kode)s))
ORDER BY r.round_seq, s.source, s.kode_wilayah NULLS LAST, s.submission_id;

-- name: refused_entries
-- One round's landing entries that could not be processed as submissions, and the rows they held.
SELECT e.source, e.entry, coalesce(e.ringkasan ->> 'submission_id', e.entry) AS submission_id,
       e.reason_code, e.ringkasan IS NOT NULL AS has_ringkasan,
       (SELECT coalesce(sum(n::bigint), 0) FROM jsonb_each_text(e.rows) AS x(f, n)) AS received
FROM ingest.refused_entry e
JOIN ingest.round r ON r.round_seq = e.round_seq
WHERE r.round_id = %(round_id)s
ORDER BY e.source, e.entry;

-- name: ringkasan
SELECT s.ringkasan FROM ingest.submission s JOIN ingest.round r ON r.round_seq = s.round_seq
WHERE r.round_id = %(round_id)s AND s.submission_id = %(submission_id)s AND s.ringkasan IS NOT NULL
UNION ALL
SELECT e.ringkasan FROM ingest.refused_entry e JOIN ingest.round r ON r.round_seq = e.round_seq
WHERE r.round_id = %(round_id)s AND e.ringkasan ->> 'submission_id' = %(submission_id)s AND e.ringkasan IS NOT NULL
LIMIT 1;

-- name: versions
-- Every version, newest first, with what its build kept (counts per desil, recipients per program).
SELECT v.version, r.round_id, v.status, v.previous_version, v.created_at, v.published_at,
       v.counts, v.programs, v.approved_by, v.approved_at, v.approval_reason,
       (v.audit ->> 'success')::boolean AS audit_passed,
       v.version = (SELECT version FROM publish.current_version) AS is_current
FROM publish.version v JOIN ingest.round r ON r.round_seq = v.round_seq
ORDER BY v.version DESC;

-- name: version
SELECT v.version, r.round_id, v.status, v.previous_version, v.created_at, v.published_at, v.counts,
       v.programs, v.audit, v.manifest, v.build, v.approved_by, v.approved_at, v.approval_reason,
       v.version = (SELECT version FROM publish.current_version) AS is_current
FROM publish.version v JOIN ingest.round r ON r.round_seq = v.round_seq
WHERE v.version = %(version)s;

-- name: decisions
SELECT outcome, decided_by, channel, reason, dag_run_id, decided_at
FROM publish.approval_decision WHERE version = %(version)s ORDER BY decided_at, decision_pk;

-- name: regency_names
SELECT kode, nama FROM ref.kabupaten WHERE kode = ANY(%(codes)s);

-- name: recipient_counts
-- Recipients per program and regency of two versions (either may be 0: none).
SELECT program, kode_kabupaten, sum(recipients) FILTER (WHERE version = %(a)s) AS a,
       sum(recipients) FILTER (WHERE version = %(b)s) AS b
FROM publish.recipient_count WHERE version IN (%(a)s, %(b)s)
GROUP BY 1, 2;

-- name: models
-- Every ranking model, newest first: where it came from, whether it is the one in use, and its card
-- (NULL for a model registered from a file: a card comes with a fit).
SELECT m.model_version, m.name, m.document ->> 'version' AS version, m.source, m.sha256, m.created_by,
       m.created_at, m.model_version = (SELECT model_version FROM publish.adopted_model) AS in_use,
       c.as_of_version, c.compared_with, c.card
FROM publish.ranking_model m LEFT JOIN publish.ranking_model_card c USING (model_version)
WHERE %(model_version)s::int IS NULL OR m.model_version = %(model_version)s
ORDER BY m.model_version DESC;

-- name: model_document
-- One model's terms and intercept, for the model page of a model without a card.
SELECT document -> 'terms' AS terms, document -> 'intercept' AS intercept
FROM publish.ranking_model WHERE model_version = %(model_version)s;

-- name: model_decisions
-- The decisions on one model (or on every model: a NULL filter), oldest first: who, how, when and why.
SELECT model_version, outcome, decided_by, channel, reason, refused_because, dag_run_id, decided_at
FROM publish.ranking_model_decision
WHERE %(model_version)s::int IS NULL OR model_version = %(model_version)s
ORDER BY decided_at, decision_pk;

-- name: province_names
SELECT kode, nama FROM ref.provinsi WHERE kode = ANY(%(codes)s);

-- name: cases_by_region
-- Verification cases per regency: the live ones by state, those past their due date without a field
-- result (missed: still live, or expired), their age, and how the closed ones ended. %(today)s: the
-- cockpit's date (Asia/Jakarta).
SELECT left(c.kode_wilayah, 4) AS kode,
       count(*) FILTER (WHERE c.state = 'OPEN') AS open,
       count(*) FILTER (WHERE c.state = 'ASSIGNED') AS assigned,
       count(*) FILTER (WHERE c.state = 'VISITED') AS visited,
       count(*) FILTER (WHERE c.state IN ('OPEN', 'ASSIGNED') AND c.due_date < %(today)s) AS overdue,
       count(*) FILTER (WHERE c.state = 'EXPIRED') AS expired,
       count(*) FILTER (WHERE c.state = 'RESOLVED') AS resolved,
       count(*) FILTER (WHERE c.state IN ('OPEN', 'ASSIGNED', 'VISITED')
                        AND c.opened_at < %(today)s::date - 90) AS older_than_90_days,
       max(%(today)s::date - c.opened_at::date) FILTER (WHERE c.state IN ('OPEN', 'ASSIGNED', 'VISITED'))
           AS oldest_live_days
FROM cases.verification_case c
GROUP BY 1 ORDER BY 1;

-- name: cases_by_origin
-- Per origin: the cases it gave a reason to, and of those a visit closed, how many the visit upheld
-- (it found what the flag suspected: anything but CONFIRMED): each rule's precision.
SELECT r.origin,
       count(DISTINCT c.id_kasus) AS cases,
       count(DISTINCT c.id_kasus) FILTER (WHERE c.state IN ('OPEN', 'ASSIGNED', 'VISITED')) AS live,
       count(DISTINCT c.id_kasus) FILTER (WHERE c.state = 'EXPIRED') AS expired,
       count(DISTINCT c.id_kasus) FILTER (WHERE c.state = 'RESOLVED') AS resolved,
       count(DISTINCT c.id_kasus) FILTER (WHERE c.state = 'RESOLVED' AND c.outcome <> 'CONFIRMED') AS upheld
FROM cases.case_reason r JOIN cases.verification_case c ON c.id_kasus = r.id_kasus
GROUP BY r.origin ORDER BY r.origin;

-- name: cases_by_round
-- Per round: cases opened, and how the cases it closed ended.
SELECT r.round_id,
       (SELECT count(*) FROM cases.verification_case o WHERE o.opened_round = r.round_seq) AS opened,
       count(c.id_kasus) FILTER (WHERE c.state = 'EXPIRED') AS expired,
       count(c.id_kasus) FILTER (WHERE c.outcome = 'CONFIRMED') AS confirmed,
       count(c.id_kasus) FILTER (WHERE c.outcome = 'CORRECTED') AS corrected,
       count(c.id_kasus) FILTER (WHERE c.outcome = 'NOT_FOUND') AS not_found,
       count(c.id_kasus) FILTER (WHERE c.outcome = 'MOVED') AS moved,
       count(c.id_kasus) FILTER (WHERE c.outcome = 'DECEASED') AS deceased,
       count(c.id_kasus) FILTER (WHERE c.outcome = 'WITHDRAWN') AS withdrawn
FROM ingest.round r
LEFT JOIN cases.verification_case c ON c.closed_round = r.round_seq
WHERE EXISTS (SELECT 1 FROM cases.round_summary s WHERE s.round_seq = r.round_seq)
GROUP BY r.round_seq, r.round_id ORDER BY r.round_seq DESC;
