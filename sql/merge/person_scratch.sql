-- The merge's per-person scratch: the round's accepted member rows (acc_anggota), each touched
-- person's state after the round (per_new) and the changes to record (per_changes). Everything here
-- reads staging and the registry as they were before the merge, and splits by NIK, the key the
-- persons and memberships are partitioned by (issue 27). `mode` (a fragment):
--   whole  the merge's own session builds each table with CREATE TABLE AS (one session);
--   empty  the tables are created without rows (a session of their own, committed);
--   share  one of several sessions inserts the NIKs of its share: those for which
--          satisfies_hash_partition(registry.person, share_modulus, share_remainder) holds, which with
--          a modulus dividing the partitions' (16) are whole partitions of registry.person.
-- Parameters: round_seq, snapshot_pk (and share_modulus, share_remainder).
{% from "merge/accepted.sql" import accepted %}
{% macro into(table) -%}
{% if mode == "share" %}INSERT INTO scratch_merge.{{ table }}{% else %}CREATE UNLOGGED TABLE scratch_merge.{{ table }} AS{% endif %}
{%- endmacro %}
{% macro in_share(keyword, nik) -%}
{% if mode == "share" %}
{{ keyword }} satisfies_hash_partition('registry.person'::regclass, %(share_modulus)s, %(share_remainder)s, {{ nik }}){% endif %}
{%- endmacro %}
{% macro no_data() -%}
{% if mode == "empty" %}
WITH NO DATA{% endif %}
{%- endmacro %}

-- name: accepted_anggota
-- A member row's collection date is its family row's tanggal_pendataan in the same submission.
{{ into("acc_anggota") }}
SELECT s.submission_pk, s.line_no, s.submitted_at, s.operasi, s.nik::bigint AS nik, s.no_kk::bigint AS no_kk,
       s.nama, s.jenis_kelamin::smallint AS jenis_kelamin, s.tanggal_lahir::date AS tanggal_lahir,
       s.hubungan_keluarga::smallint AS hubungan_keluarga,
       {% for a in member_attributes %}s.{{ a.name }}::{{ a.sql_type }} AS {{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, s.alasan_hapus,
       k.collected,
       row_number() OVER (PARTITION BY s.nik::bigint ORDER BY k.collected DESC NULLS LAST,
                          s.submitted_at DESC NULLS LAST, s.submission_pk DESC) AS rnk
FROM {{ accepted("pemda_anggota", "anggota.csv") }}
-- a join to the per-family dates, not a subquery per member: staging has no (submission, no_kk)
-- index, and the correlated form scanned a submission's families once per member row
LEFT JOIN (SELECT submission_pk, no_kk, max(meta.to_date_or_null(tanggal_pendataan)) AS collected
           FROM staging.pemda_keluarga WHERE round_seq = %(round_seq)s
           GROUP BY submission_pk, no_kk) k
       ON k.submission_pk = s.submission_pk AND k.no_kk = s.no_kk
{{ in_share("WHERE", "s.nik::bigint") }}{{ no_data() }};

{% if mode == "whole" -%}
-- name: analyze_accepted_anggota
-- the person_new plan prices acc_anggota by its statistics (shares read only their own rows)
ANALYZE scratch_merge.acc_anggota;
{%- endif %}

-- name: person_new
-- planner: probe
-- Each person a winning member row touches, with identity from Dukcapil where it knows the NIK.
{{ into("per_new") }}
SELECT a.nik, a.operasi, a.alasan_hapus, a.submission_pk, a.no_kk AS target_kk,
       p.nik IS NOT NULL AS existed, coalesce(p.is_open, false) AS was_open,
       m.no_kk AS current_kk, m.hubungan_keluarga AS current_hubungan,
       coalesce(a.hubungan_keluarga, m.hubungan_keluarga) AS hubungan_keluarga,
       coalesce(d.nama, a.nama, p.nama) AS nama,
       coalesce(d.jenis_kelamin, a.jenis_kelamin, p.jenis_kelamin) AS jenis_kelamin,
       coalesce(d.tanggal_lahir, a.tanggal_lahir, p.tanggal_lahir) AS tanggal_lahir,
       d.nama IS NOT NULL AND d.nama IS DISTINCT FROM a.nama AS nama_by_dukcapil,
       d.jenis_kelamin IS NOT NULL AND d.jenis_kelamin IS DISTINCT FROM a.jenis_kelamin AS jk_by_dukcapil,
       d.tanggal_lahir IS NOT NULL AND d.tanggal_lahir IS DISTINCT FROM a.tanggal_lahir AS tgl_by_dukcapil,
       coalesce(a.nama, p.nama) AS nama_reported,
       coalesce(a.jenis_kelamin, p.jenis_kelamin) AS jk_reported,
       coalesce(a.tanggal_lahir, p.tanggal_lahir) AS tgl_reported,
       {% for a in member_attributes %}coalesce(a.{{ a.name }}, p.{{ a.name }}) AS {{ a.name }}{% if not loop.last %},
       {% endif %}{% endfor %},
       -- the registry's values before this round, so recording the changes needs no second join
       p.nama AS old_nama, p.jenis_kelamin AS old_jenis_kelamin, p.tanggal_lahir AS old_tanggal_lahir,
       {% for a in member_attributes %}p.{{ a.name }} AS old_{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, p.is_open AS old_is_open
FROM scratch_merge.acc_anggota a
LEFT JOIN registry.person p ON p.nik = a.nik
LEFT JOIN registry.membership m ON m.nik = a.nik AND m.valid_to_round IS NULL
LEFT JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d ON d.nik = a.nik
WHERE a.rnk = 1{{ in_share("AND", "a.nik") }}{{ no_data() }};

-- name: person_changes
-- planner: sift
-- Existing persons: every changed field. New persons: identity values Dukcapil corrected, with the
-- value the region reported as the old one, so the correction stays explainable. Worked out by a
-- CREATE TABLE AS, which may get parallel workers (every field of every touched person is compared,
-- 5.4 of a 1M first load's 38 s merge, and few rows are kept), then inserted, which cannot. It reads
-- only per_new: nothing to probe.
{{ into("per_changes") }}
SELECT n.nik AS entity_key, v.field, v.old_value, v.new_value,
       CASE WHEN v.by_dukcapil THEN NULL ELSE n.submission_pk END AS submission_pk,
       CASE WHEN v.by_dukcapil THEN 'dukcapil' ELSE 'pemda' END AS source
FROM scratch_merge.per_new n
CROSS JOIN LATERAL (VALUES
    ('nama', CASE WHEN n.existed THEN n.old_nama ELSE n.nama_reported END, n.nama, n.nama_by_dukcapil),
    ('jenis_kelamin', CASE WHEN n.existed THEN n.old_jenis_kelamin ELSE n.jk_reported END::text,
     n.jenis_kelamin::text, n.jk_by_dukcapil),
    ('tanggal_lahir', CASE WHEN n.existed THEN n.old_tanggal_lahir ELSE n.tgl_reported END::text,
     n.tanggal_lahir::text, n.tgl_by_dukcapil),
    {% for a in member_attributes %}('{{ a.name }}', n.old_{{ a.name }}::text, n.{{ a.name }}::text, false){% if not loop.last %},
    {% endif %}{% endfor %},
    ('is_open', n.old_is_open::text, 'true', false)
) AS v(field, old_value, new_value, by_dukcapil)
WHERE n.operasi <> 'HAPUS' AND v.old_value IS DISTINCT FROM v.new_value
  AND (n.existed OR v.field IN ('nama', 'jenis_kelamin', 'tanggal_lahir')){{ in_share("AND", "n.nik") }}{{ no_data() }};
