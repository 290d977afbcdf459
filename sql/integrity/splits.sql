-- Split and surge detection for one merged round (dtsen.integrity.splits), set-based and bounded by
-- what the round changed: the families it created are found among the families its merge touched.
-- Parameters: %(round_seq)s and config/integrity.json "splits" (small_family_max_members,
-- min_families, z_threshold, village_scale_floor, account_share_floor, history_rounds, min_history).
--
-- A robust z: (x - median) / max(1.4826 * MAD, floor), where 1.4826 * MAD estimates a standard
-- deviation without letting the outliers being looked for set it, and the floor keeps a handful of
-- families from scoring high where the median and MAD are 0 (most villages, most rounds).

{#- `name` (n, med, mad per `keys`) from a relation `values` of (keys..., x), its rows where `where`:
    the median and the median absolute deviation the robust z is built from. -#}
{% macro median_and_mad(name, values, keys, where="true") -%}
{{ name }}_median AS (
    SELECT {{ keys | join(", ") }}, count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS med
    FROM {{ values }} WHERE {{ where }} GROUP BY {{ keys | join(", ") }}
), {{ name }} AS (
    SELECT {% for k in keys %}v.{{ k }}, {% endfor %}m.n, m.med,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(v.x - m.med)) AS mad
    FROM {{ values }} v JOIN {{ name }}_median m USING ({{ keys | join(", ") }})
    WHERE {{ where }}
    GROUP BY {% for k in keys %}v.{{ k }}, {% endfor %}m.n, m.med
)
{%- endmacro %}

-- Each family the round created, with its village, the account of the submission that created it,
-- whether a member left an existing family for it in this round (a split), and its members now.
-- name: new_families
INSERT INTO quality.integrity_family (round_seq, no_kk, kode_wilayah, submitted_by, split, members)
SELECT %(round_seq)s, f.no_kk, f.kode_wilayah, coalesce(s.submitted_by, ''),
       EXISTS (SELECT 1 FROM registry.membership m
               JOIN registry.membership b ON b.nik = m.nik AND b.valid_to_round = %(round_seq)s
                                         AND b.no_kk <> m.no_kk
               JOIN registry.family o ON o.no_kk = b.no_kk AND o.created_round < %(round_seq)s
               WHERE m.no_kk = f.no_kk AND m.valid_to_round IS NULL AND m.valid_from_round = %(round_seq)s),
       (SELECT count(*) FROM registry.membership m WHERE m.no_kk = f.no_kk AND m.valid_to_round IS NULL)
FROM registry.round_touched t
JOIN registry.family f ON f.no_kk = t.key AND f.created_round = %(round_seq)s AND f.is_open
LEFT JOIN ingest.submission s ON s.submission_pk = f.created_submission
WHERE t.entity = 'F' AND t.round_seq = %(round_seq)s;

-- name: villages
INSERT INTO quality.integrity_village (round_seq, kode_wilayah, new_families, split_families, small_families)
SELECT %(round_seq)s, kode_wilayah, count(*), count(*) FILTER (WHERE split),
       count(*) FILTER (WHERE members <= %(small_family_max_members)s)
FROM quality.integrity_family WHERE round_seq = %(round_seq)s
GROUP BY kode_wilayah;

-- Each account that sent a merged pemda submission: its new families, and the keluarga rows it sent
-- (an account's share is measured against how much it entered).
-- name: accounts
INSERT INTO quality.integrity_account
    (round_seq, submitted_by, kode_kabupaten, keluarga_rows, split_families, small_families)
SELECT %(round_seq)s, a.submitted_by, a.kab, a.keluarga_rows, coalesce(n.split, 0), coalesce(n.small, 0)
FROM (SELECT coalesce(s.submitted_by, '') AS submitted_by, min(s.kode_wilayah) AS kab,
             sum(coalesce(sf.rows_received, 0)) AS keluarga_rows
      FROM ingest.submission s
      LEFT JOIN ingest.submission_file sf ON sf.submission_pk = s.submission_pk AND sf.file_name = 'keluarga.csv'
      WHERE s.round_seq = %(round_seq)s AND s.source = 'pemda' AND s.status IN ('MERGED', 'PARTIAL')
      GROUP BY 1) a
LEFT JOIN (SELECT submitted_by, count(*) FILTER (WHERE split) AS split,
                  count(*) FILTER (WHERE members <= %(small_family_max_members)s) AS small
           FROM quality.integrity_family WHERE round_seq = %(round_seq)s GROUP BY 1) n
       ON n.submitted_by = a.submitted_by;

-- Villages: each metric that reached min_families, against the villages of its regency (the region
-- reference's list; a village without new families counts 0) and its own last scored rounds.
-- name: village_flags
WITH candidate AS (
    SELECT v.kode_wilayah, left(v.kode_wilayah, 4) AS kab, m.metric, m.x
    FROM quality.integrity_village v
    CROSS JOIN LATERAL (VALUES ('split', v.split_families), ('small', v.small_families)) m(metric, x)
    WHERE v.round_seq = %(round_seq)s AND m.x >= %(min_families)s
), peer_values AS (
    SELECT d.kabupaten_kode AS kab, m.metric, m.x
    FROM ref.desa d
    LEFT JOIN quality.integrity_village iv ON iv.round_seq = %(round_seq)s AND iv.kode_wilayah = d.kode
    CROSS JOIN LATERAL (VALUES ('split', coalesce(iv.split_families, 0)),
                               ('small', coalesce(iv.small_families, 0))) m(metric, x)
    WHERE d.kabupaten_kode IN (SELECT kab FROM candidate)
), {{ median_and_mad("peer", "peer_values", ["kab", "metric"]) }}, past AS (
    SELECT round_seq FROM quality.integrity_round WHERE scored AND round_seq < %(round_seq)s
    ORDER BY round_seq DESC LIMIT %(history_rounds)s
), history_values AS (
    SELECT c.kode_wilayah, c.metric,
           CASE c.metric WHEN 'split' THEN coalesce(iv.split_families, 0) ELSE coalesce(iv.small_families, 0) END AS x
    FROM candidate c CROSS JOIN past r
    LEFT JOIN quality.integrity_village iv ON iv.round_seq = r.round_seq AND iv.kode_wilayah = c.kode_wilayah
), {{ median_and_mad("history", "history_values", ["kode_wilayah", "metric"]) }}, scored AS (
    SELECT c.kode_wilayah, c.kab, c.metric, c.x, p.med AS peer_median,
           greatest(1.4826 * p.mad, %(village_scale_floor)s) AS peer_scale, coalesce(h.n, 0) AS n,
           h.med AS history_median, greatest(1.4826 * h.mad, %(village_scale_floor)s) AS history_scale
    FROM candidate c JOIN peer p USING (kab, metric) LEFT JOIN history h USING (kode_wilayah, metric)
)
INSERT INTO quality.integrity_flag (round_seq, scope, key, kode_kabupaten, metric, observed, families, peer_median,
                                    peer_scale, z_peer, history_rounds, history_median, z_history)
SELECT %(round_seq)s, 'DESA', kode_wilayah, kab, metric, x, x, peer_median, peer_scale,
       (x - peer_median) / peer_scale, n,
       CASE WHEN n >= %(min_history)s THEN history_median END,
       CASE WHEN n >= %(min_history)s THEN (x - history_median) / history_scale END
FROM scored
WHERE (x - peer_median) / peer_scale >= %(z_threshold)s
  AND (n < %(min_history)s OR (x - history_median) / history_scale >= %(z_threshold)s);

-- Accounts: the share of the keluarga rows an account sent that became split (or small) families,
-- against the round's accounts and the account's own last scored rounds (the rounds it sent in).
-- name: account_flags
WITH past AS (
    SELECT round_seq FROM quality.integrity_round WHERE scored AND round_seq < %(round_seq)s
    ORDER BY round_seq DESC LIMIT %(history_rounds)s
), share AS (
    SELECT a.round_seq, a.submitted_by, a.kode_kabupaten, m.metric, m.families,
           m.families::float8 / greatest(a.keluarga_rows, 1) AS x
    FROM quality.integrity_account a
    CROSS JOIN LATERAL (VALUES ('split', a.split_families), ('small', a.small_families)) m(metric, families)
    WHERE a.round_seq = %(round_seq)s OR a.round_seq IN (SELECT round_seq FROM past)
), {{ median_and_mad("peer", "share", ["metric"], "round_seq = %(round_seq)s") }},
{{ median_and_mad("history", "share", ["submitted_by", "metric"], "round_seq < %(round_seq)s") }}, scored AS (
    SELECT c.submitted_by, c.kode_kabupaten, c.metric, c.x, c.families, p.n AS peers, p.med AS peer_median,
           greatest(1.4826 * p.mad, %(account_share_floor)s) AS peer_scale, coalesce(h.n, 0) AS n,
           h.med AS history_median, greatest(1.4826 * h.mad, %(account_share_floor)s) AS history_scale
    FROM share c JOIN peer p USING (metric) LEFT JOIN history h USING (submitted_by, metric)
    WHERE c.round_seq = %(round_seq)s AND c.families >= %(min_families)s
)
INSERT INTO quality.integrity_flag (round_seq, scope, key, kode_kabupaten, metric, observed, families, peer_median,
                                    peer_scale, z_peer, history_rounds, history_median, z_history)
SELECT %(round_seq)s, 'AKUN', submitted_by, kode_kabupaten, metric, x, families, peer_median, peer_scale,
       (x - peer_median) / peer_scale, n,
       CASE WHEN n >= %(min_history)s THEN history_median END,
       CASE WHEN n >= %(min_history)s THEN (x - history_median) / history_scale END
FROM scored
-- far above the round's other accounts (when there are at least three) and its own history, or past
-- the ceiling whatever the others do: a round may have too few accounts to compare with, and no
-- regency's own data entry makes most of its family rows split-offs or tiny new families
WHERE (peers >= 3 AND (x - peer_median) / peer_scale >= %(z_threshold)s
       AND (n < %(min_history)s OR (x - history_median) / history_scale >= %(z_threshold)s))
   OR x >= %(account_share_ceiling)s;

-- The families behind the flags, for Kemensos's ground-check plan: keys masked as in ditolak.csv.
-- name: families_involved
SELECT f.kode_wilayah, meta.mask_for_feedback(f.no_kk::text) AS no_kk, f.members AS jumlah_anggota,
       f.split::int AS pemisahan_kk, string_agg(DISTINCT fl.scope || ':' || fl.metric, ';') AS dasar,
       f.submitted_by AS akun
FROM quality.integrity_flag fl
JOIN quality.integrity_family f ON f.round_seq = fl.round_seq
 AND ((fl.scope = 'DESA' AND f.kode_wilayah = fl.key) OR (fl.scope = 'AKUN' AND f.submitted_by = fl.key))
 AND ((fl.metric = 'split' AND f.split) OR (fl.metric = 'small' AND f.members <= %(small_family_max_members)s))
WHERE fl.round_seq = %(round_seq)s
GROUP BY f.kode_wilayah, f.no_kk, f.members, f.split, f.submitted_by
ORDER BY f.kode_wilayah, f.no_kk

-- name: counts
SELECT (SELECT count(*) FROM quality.integrity_village WHERE round_seq = %(round_seq)s) AS villages_scored,
       (SELECT count(DISTINCT key) FROM quality.integrity_flag WHERE round_seq = %(round_seq)s AND scope = 'DESA')
           AS villages_flagged,
       (SELECT count(*) FROM quality.integrity_account WHERE round_seq = %(round_seq)s) AS accounts_scored,
       (SELECT count(DISTINCT key) FROM quality.integrity_flag WHERE round_seq = %(round_seq)s AND scope = 'AKUN')
           AS accounts_flagged,
       (SELECT count(*) FROM quality.integrity_family WHERE round_seq = %(round_seq)s) AS new_families

-- A version's implausible recipients per region, for Kemensos's ground-check plan (keys masked as in
-- ditolak.csv); the rule's description is in config/integrity.json.
-- name: implausible_families
SELECT kode_wilayah, meta.mask_for_feedback(no_kk::text) AS no_kk, desil, string_agg(rule, ';' ORDER BY rule) AS aturan
FROM publish.implausible WHERE version = %(version)s
GROUP BY kode_wilayah, no_kk, desil
ORDER BY kode_wilayah, no_kk
