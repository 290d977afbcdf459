-- The data-ops cockpit's reads (dtsen.cockpit.data). Aggregates only, never a NIK, a name or a row
-- of the registry; each reads summaries kept per round and per version (ingest.submission.ringkasan,
-- publish.version counts/programs/audit/manifest, publish.recipient_count), or the spans opened and
-- closed between two versions, so a page costs what the rounds and versions hold, not the registry.

-- name: rounds
-- Every round, newest first, with its submissions by status and the rows they brought.
SELECT r.round_id, r.status, r.created_at, r.merged_at, r.published_version,
       count(s.submission_pk) AS submissions,
       count(s.submission_pk) FILTER (WHERE s.status = 'MERGED') AS merged_submissions,
       count(s.submission_pk) FILTER (WHERE s.status = 'REJECTED') AS rejected_submissions,
       coalesce(sum(t.received), 0)::bigint AS rows_received,
       coalesce(sum(t.merged), 0)::bigint AS rows_merged,
       coalesce(sum(t.rejected), 0)::bigint AS rows_rejected,
       (SELECT count(*) FROM ingest.refused_entry e WHERE e.round_seq = r.round_seq) AS refused_entries
FROM ingest.round r
LEFT JOIN ingest.submission s ON s.round_seq = r.round_seq
LEFT JOIN LATERAL (
    SELECT sum((f.value ->> 'received')::bigint) AS received, sum((f.value ->> 'merged')::bigint) AS merged,
           sum((f.value ->> 'rejected')::bigint) AS rejected
    FROM jsonb_each(s.ringkasan -> 'rows') f
) t ON true
GROUP BY r.round_seq
ORDER BY r.round_seq DESC;

-- name: round_submissions
-- One round's submissions (and refused landing entries), by source and region: status, rows
-- received / merged / rejected (from the ringkasan.json written to the region), reasons with counts.
SELECT s.source, s.kode_wilayah, k.nama AS nama_wilayah, s.submission_id,
       coalesce(s.ringkasan ->> 'status', s.status) AS status, s.reason_code,
       s.ringkasan IS NOT NULL AS has_ringkasan,
       (SELECT sum((f.value ->> 'received')::bigint) FROM jsonb_each(s.ringkasan -> 'rows') f) AS received,
       (SELECT sum((f.value ->> 'merged')::bigint) FROM jsonb_each(s.ringkasan -> 'rows') f) AS merged,
       (SELECT sum((f.value ->> 'rejected')::bigint) FROM jsonb_each(s.ringkasan -> 'rows') f) AS rejected,
       coalesce(s.ringkasan -> 'reasons', '{}') AS reasons,
       s.submitted_at
FROM ingest.submission s
JOIN ingest.round r ON r.round_seq = s.round_seq
LEFT JOIN ref.kabupaten k ON k.kode = s.kode_wilayah
WHERE r.round_id = %(round_id)s
UNION ALL
SELECT e.source, NULL, NULL, coalesce(e.ringkasan ->> 'submission_id', e.entry), 'REFUSED', e.reason_code,
       e.ringkasan IS NOT NULL,
       (SELECT sum(n::bigint) FROM jsonb_each_text(e.rows) AS x(f, n)), 0,
       (SELECT sum(n::bigint) FROM jsonb_each_text(e.rows) AS x(f, n)),
       jsonb_build_object(e.reason_code, (SELECT coalesce(sum(n::bigint), 0) FROM jsonb_each_text(e.rows) AS x(f, n))),
       e.first_seen
FROM ingest.refused_entry e
JOIN ingest.round r ON r.round_seq = e.round_seq
WHERE r.round_id = %(round_id)s
ORDER BY 1, 2 NULLS LAST, 4;

-- name: region_trend
-- One region's pemda submissions over the rounds: rows received, merged, rejected, and its reasons.
SELECT r.round_id, s.submission_id, coalesce(s.ringkasan ->> 'status', s.status) AS status,
       (SELECT sum((f.value ->> 'received')::bigint) FROM jsonb_each(s.ringkasan -> 'rows') f) AS received,
       (SELECT sum((f.value ->> 'merged')::bigint) FROM jsonb_each(s.ringkasan -> 'rows') f) AS merged,
       (SELECT sum((f.value ->> 'rejected')::bigint) FROM jsonb_each(s.ringkasan -> 'rows') f) AS rejected,
       coalesce(s.ringkasan -> 'reasons', '{}') AS reasons
FROM ingest.submission s
JOIN ingest.round r ON r.round_seq = s.round_seq
WHERE s.source = 'pemda' AND s.kode_wilayah = %(kode)s AND s.duplicate_of IS NULL
ORDER BY r.round_seq, s.submission_pk;

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
