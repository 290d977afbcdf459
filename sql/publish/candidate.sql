-- Build candidate version %(version)s from the registry as merged by its round (write-audit-publish:
-- "write"), as what changed since version %(basis)s (the newest version, -1 when there is none).
-- dtsen.publish.candidate picks how the families and persons to look at again are found (changed_*
-- after the rounds' recorded touches, or all_* for a whole rebuild) and generates the ranking,
-- recipient and integrity statements from the model, program and integrity files.
--
-- Three phases, so the writes can be split over several sessions (dtsen.publish.candidate):
--   1. the statements without a prefix work out the version in scratch tables (the schema
--      scratch_candidate, first on the search path) and write nothing else: they read the registry
--      and the basis's spans only. Every table follows one pattern: the new rows of the records
--      looked at (new_*), the current spans of those records whose row differs or is gone
--      (closing_*: closed with valid_to = version), and the new rows no current span will equal
--      once those are closed (opening_*: opened with valid_from = version). A record not looked
--      at keeps its span;
--   2. apply_* writes the spans: one disjoint share of every table per session, a range of its key
--      (dtsen.publish.candidate.share_bounds; one session: the whole table);
--   3. finish_* records the version's counts and forgets the touches read, in the transaction
--      that decides the version; settle_* runs once the spans are written.

{% set member_columns %}nik, no_kk, nama, jenis_kelamin, tanggal_lahir, hubungan_keluarga, {% for a in member_attributes %}{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}{% endset %}
{% set family_columns %}no_kk, kode_wilayah, desil, skor_kesejahteraan, skor_sumber, jumlah_anggota, alamat, tanggal_pendataan, {% for a in family_attributes %}{{ a.name }}, {% endfor %}pengeluaran_per_kapita, tanggal_survei, groundcheck_tanggal, groundcheck_hasil{% endset %}
{% set recipient_columns %}program, nik, no_kk, kode_wilayah, desil, prioritas, komponen{% endset %}
{% set implausible_columns %}rule, no_kk, kode_wilayah, desil{% endset %}
{#- The pattern, once: `looked_at` (a relation with `by`) names the records looked at again, `new`
    their new rows, `key` a record's key, `columns` the span's row. -#}
{% macro closing(table, looked_at, by, new, key, columns) -%}
CREATE UNLOGGED TABLE closing_{{ table }} AS
SELECT s.* FROM publish.{{ table }}_span s
JOIN {{ looked_at }} x ON s.{{ by }} = x.{{ by }}
WHERE s.valid_to IS NULL
  AND NOT EXISTS (SELECT 1 FROM {{ new }} n
                  WHERE {% for k in key %}n.{{ k }} = s.{{ k }} AND {% endfor %}(n.{{ columns | replace(", ", ", n.") }})
                        IS NOT DISTINCT FROM (s.{{ columns | replace(", ", ", s.") }}));
CREATE UNIQUE INDEX ON closing_{{ table }} ({{ key | join(", ") }});
ANALYZE closing_{{ table }}
{%- endmacro %}
{% macro opening(table, new, key, columns) -%}
CREATE UNLOGGED TABLE opening_{{ table }} AS
SELECT n.{{ columns | replace(", ", ", n.") }} FROM {{ new }} n
WHERE NOT EXISTS (SELECT 1 FROM publish.{{ table }}_span s
                  WHERE {% for k in key %}s.{{ k }} = n.{{ k }} AND {% endfor %}s.valid_to IS NULL
                    AND NOT EXISTS (SELECT 1 FROM closing_{{ table }} c
                                    WHERE {% for k in key %}c.{{ k }} = s.{{ k }}{% if not loop.last %} AND {% endif %}{% endfor %}))
{%- endmacro %}
{#- The members of `families` in the new version: the new rows of the persons looked at, the basis's
    current rows of the others. -#}
{% macro members_after(families) -%}
SELECT %(version)s AS version, n.{{ member_columns | replace(", ", ", n.") }}
FROM {{ families }} x JOIN new_member n ON n.no_kk = x.no_kk
UNION ALL
SELECT %(version)s, a.{{ member_columns | replace(", ", ", a.") }}
FROM {{ families }} x JOIN publish.anggota_span a ON a.no_kk = x.no_kk AND a.valid_to IS NULL
WHERE NOT EXISTS (SELECT 1 FROM cand_person p WHERE p.nik = a.nik)
{%- endmacro %}
{#- A session's share of a table: the keys from %(low_<table>)s up to %(high_<table>)s (NULL: open
    ended). Contiguous ranges, so each session writes its own part of every index. -#}
{% macro in_share(table, column) -%}
(%(low_{{ table }})s::bigint IS NULL OR {{ column }} >= %(low_{{ table }})s::bigint)
  AND (%(high_{{ table }})s::bigint IS NULL OR {{ column }} < %(high_{{ table }})s::bigint)
{%- endmacro %}
{% macro apply_close(table, key, split) -%}
UPDATE publish.{{ table }}_span s SET valid_to = %(version)s
FROM closing_{{ table }} c
WHERE {% for k in key %}s.{{ k }} = c.{{ k }} AND {% endfor %}s.valid_from = c.valid_from AND s.valid_to IS NULL
  AND {{ in_share(table, "c." ~ split) }}
{%- endmacro %}
{% macro apply_open(table, split, columns) -%}
INSERT INTO publish.{{ table }}_span ({{ columns }}, valid_from)
SELECT {{ columns }}, %(version)s FROM opening_{{ table }} WHERE {{ in_share(table, split) }}
{%- endmacro %}
{#- Counts per version, `by` (program or rule) and regency: the basis's counts, plus the spans this
    version opens, minus those it closes. -#}
{% macro carry_counts(table, by, counted) -%}
INSERT INTO publish.{{ table }}_count (version, {{ by }}, kode_kabupaten, {{ counted }})
SELECT %(version)s, {{ by }}, kab, sum(n) FROM (
    SELECT {{ by }}, kode_kabupaten AS kab, {{ counted }} AS n FROM publish.{{ table }}_count WHERE version = %(basis)s
    UNION ALL
    SELECT {{ by }}, left(kode_wilayah, 4), count(*) FROM opening_{{ table }} GROUP BY 1, 2
    UNION ALL
    SELECT {{ by }}, left(kode_wilayah, 4), -count(*) FROM closing_{{ table }} GROUP BY 1, 2
) x
GROUP BY {{ by }}, kab
HAVING sum(n) <> 0
{%- endmacro %}

-- Persons whose rows may differ from the basis: what the merges since it touched, and whose Dukcapil
-- record changed since its snapshot (death decides eligibility).
-- name: changed_persons
CREATE UNLOGGED TABLE cand_person AS
SELECT key AS nik FROM registry.round_touched
WHERE entity = 'P' AND round_seq > %(basis_round_seq)s AND round_seq <= %(round_seq)s
UNION
SELECT nik FROM ref.dukcapil_change
WHERE snapshot_pk > %(basis_snapshot_pk)s AND snapshot_pk <= coalesce(%(snapshot_pk)s, -1);

-- Families whose score, decile or recipients may differ: touched ones, the families the changed
-- persons are in and were in, and those time alone changes: a member's birthday crossing an age a
-- rule compares with, or a BPS measurement growing too old to replace the model's score. The date
-- windows are widened by two days so 29 February cannot slip between two readings of age().
-- name: changed_families
CREATE UNLOGGED TABLE cand_family AS
SELECT key AS no_kk FROM registry.round_touched
WHERE entity = 'F' AND round_seq > %(basis_round_seq)s AND round_seq <= %(round_seq)s
UNION SELECT m.no_kk FROM cand_person c JOIN registry.membership m ON m.nik = c.nik AND m.valid_to_round IS NULL
UNION SELECT a.no_kk FROM cand_person c JOIN publish.anggota_span a ON a.nik = c.nik AND a.valid_to IS NULL
UNION SELECT a.no_kk FROM unnest(%(age_thresholds)s::int[]) t(age)
      JOIN publish.anggota_span a ON a.valid_to IS NULL
       AND a.tanggal_lahir > (%(date_from)s::date - make_interval(years => t.age))::date - 2
       AND a.tanggal_lahir <= (%(date_to)s::date - make_interval(years => t.age))::date + 2
UNION SELECT k.no_kk FROM publish.keluarga_span k
      WHERE k.valid_to IS NULL AND k.tanggal_survei IS NOT NULL
        AND k.tanggal_survei > (%(date_from)s::date - make_interval(months => %(bps_months)s))::date - 2
        AND k.tanggal_survei <= (%(date_to)s::date - make_interval(months => %(bps_months)s))::date + 2;

-- A whole rebuild (no basis, or the rules changed): every person and family, current or in the basis.
-- name: all_persons
CREATE UNLOGGED TABLE cand_person AS
SELECT nik FROM registry.person WHERE is_open
UNION SELECT nik FROM publish.anggota_span WHERE valid_to IS NULL;

-- name: all_families
CREATE UNLOGGED TABLE cand_family AS
SELECT no_kk FROM registry.family WHERE is_open
UNION SELECT no_kk FROM publish.keluarga_span WHERE valid_to IS NULL;

-- name: index_candidates
CREATE UNIQUE INDEX ON cand_person (nik);
CREATE UNIQUE INDEX ON cand_family (no_kk);
ANALYZE cand_person;
ANALYZE cand_family;

-- name: new_members
CREATE UNLOGGED TABLE new_member AS
SELECT p.nik, m.no_kk, p.nama, p.jenis_kelamin, p.tanggal_lahir, m.hubungan_keluarga,
       {% for a in member_attributes %}p.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}
FROM cand_person c
JOIN registry.person p ON p.nik = c.nik
JOIN registry.membership m ON m.nik = p.nik AND m.valid_to_round IS NULL
WHERE p.is_open;

-- name: index_new_members
CREATE UNIQUE INDEX ON new_member (nik);
CREATE INDEX ON new_member (no_kk);
ANALYZE new_member;

-- name: closing_members
{{ closing("anggota", "cand_person", "nik", "new_member", ["nik"], member_columns) }};

-- name: opening_members
{{ opening("anggota", "new_member", ["nik"], member_columns) }};

-- The members of the families looked at again, in the new version: what their scores and
-- recipients are computed from (dtsen.publish.candidate passes this relation to the ranking).
-- name: rescore_members
CREATE UNLOGGED TABLE rescore_member AS
{{ members_after("cand_family") }};

-- name: analyze_rescore_members
ANALYZE rescore_member;

-- (rank_families, generated from the model file, runs here: CREATE UNLOGGED TABLE rescored)

-- Every family's score: the re-scored ones, and the basis's score for the rest.
-- name: family_scores
CREATE UNLOGGED TABLE family_score AS
SELECT no_kk, skor, sumber, jumlah_anggota FROM rescored
UNION ALL
SELECT k.no_kk, k.skor_kesejahteraan, k.skor_sumber, k.jumlah_anggota
FROM publish.keluarga_span k
WHERE k.valid_to IS NULL AND NOT EXISTS (SELECT 1 FROM cand_family c WHERE c.no_kk = k.no_kk);

-- Population-weighted national deciles, one ordering of every family's score (ties by no_kk, so the
-- cut is deterministic): each family's desil from the share of individuals ranked before it. Each
-- desil holds a tenth of individuals up to one family's size.
-- name: assign_desil
CREATE UNLOGGED TABLE family_desil AS
SELECT no_kk, skor, sumber, jumlah_anggota, least(10, 1 + floor(10 * (before::numeric / total)))::smallint AS desil
FROM (
    SELECT no_kk, skor, sumber, jumlah_anggota,
           sum(jumlah_anggota) OVER (ORDER BY skor, no_kk ROWS UNBOUNDED PRECEDING) - jumlah_anggota AS before,
           sum(jumlah_anggota) OVER () AS total
    FROM family_score
) s;

-- The lowest score ranked into each desil: the thresholds an integrity rule compares a BPS
-- measurement with (config/integrity.json).
-- name: desil_floors
CREATE UNLOGGED TABLE desil_floor AS
SELECT desil, min(skor) AS skor FROM family_desil GROUP BY desil;

-- The new rows of the families looked at again and of every family whose desil moved.
-- name: new_families
CREATE UNLOGGED TABLE new_family AS
WITH rewrite AS MATERIALIZED (
    SELECT d.* FROM family_desil d
    LEFT JOIN publish.keluarga_span k ON k.no_kk = d.no_kk AND k.valid_to IS NULL
    LEFT JOIN cand_family c ON c.no_kk = d.no_kk
    WHERE c.no_kk IS NOT NULL OR k.no_kk IS NULL OR k.desil <> d.desil
)
SELECT f.no_kk, f.kode_wilayah, d.desil, d.skor AS skor_kesejahteraan, d.sumber AS skor_sumber,
       d.jumlah_anggota, f.alamat, f.tanggal_pendataan,
       {% for a in family_attributes %}f.{{ a.name }}, {% endfor %}f.pengeluaran_per_kapita, f.tanggal_survei,
       f.groundcheck_tanggal, f.groundcheck_hasil
FROM rewrite d JOIN registry.family f ON f.no_kk = d.no_kk;

-- name: index_new_families
CREATE UNIQUE INDEX ON new_family (no_kk);
ANALYZE new_family;

-- The families whose row may change: those looked at and those whose desil moved. Their rows are
-- closed or opened, and their recipients decided again.
-- name: recheck_families
CREATE UNLOGGED TABLE recheck_family AS
SELECT no_kk FROM cand_family UNION SELECT no_kk FROM new_family;
CREATE UNIQUE INDEX ON recheck_family (no_kk);
ANALYZE recheck_family;

-- name: closing_families
{{ closing("keluarga", "recheck_family", "no_kk", "new_family", ["no_kk"], family_columns) }};

-- name: opening_families
{{ opening("keluarga", "new_family", ["no_kk"], family_columns) }};

-- name: recheck_members
CREATE UNLOGGED TABLE recheck_member AS
{{ members_after("recheck_family") }};

-- name: analyze_recheck
ANALYZE recheck_member;

-- name: new_recipients
CREATE UNLOGGED TABLE new_recipient AS
SELECT {{ recipient_columns }} FROM publish.recipient_span WITH NO DATA;

-- (eligibility_context and one recipients_<program> statement per program run here)

-- name: index_new_recipients
CREATE UNIQUE INDEX ON new_recipient (program, nik);
ANALYZE new_recipient;

-- A family's recipient rows carry its no_kk: those of every family decided again are looked at.
-- name: closing_recipients
{{ closing("recipient", "recheck_family", "no_kk", "new_recipient", ["program", "nik"], recipient_columns) }};

-- name: opening_recipients
{{ opening("recipient", "new_recipient", ["program", "nik"], recipient_columns) }};

-- Implausible recipients (config/integrity.json, dtsen.integrity.config), kept as spans like the
-- recipients. Looked at: the families decided again and, when a rule compares a BPS measurement with
-- a desil's threshold (which moves with every version), every family measured within that window or
-- just out of it (found by the survey-date index).
-- name: implausible_families
CREATE UNLOGGED TABLE implausible_family AS
SELECT no_kk FROM recheck_family
UNION
SELECT k.no_kk FROM publish.keluarga_span k
WHERE %(implausible_survey_months)s > 0 AND k.valid_to IS NULL AND k.tanggal_survei IS NOT NULL
  AND k.tanggal_survei > (%(date_from)s::date - make_interval(months => %(implausible_survey_months)s))::date - 2;

-- name: index_implausible_families
CREATE UNIQUE INDEX ON implausible_family (no_kk);
ANALYZE implausible_family;

-- The rows the integrity rules read (family `k`, its members `a`) as the new version has them: the
-- new row of a family decided again, the basis's row of the others.
-- name: implausible_rows
CREATE UNLOGGED TABLE implausible_keluarga AS
SELECT n.{{ family_columns | replace(", ", ", n.") }} FROM implausible_family x JOIN new_family n ON n.no_kk = x.no_kk
UNION ALL
SELECT k.{{ family_columns | replace(", ", ", k.") }}
FROM implausible_family x JOIN publish.keluarga_span k ON k.no_kk = x.no_kk AND k.valid_to IS NULL
WHERE NOT EXISTS (SELECT 1 FROM recheck_family r WHERE r.no_kk = x.no_kk);
CREATE VIEW implausible_anggota AS
SELECT {{ member_columns }} FROM new_member
UNION ALL
SELECT a.{{ member_columns | replace(", ", ", a.") }} FROM publish.anggota_span a
WHERE a.valid_to IS NULL AND NOT EXISTS (SELECT 1 FROM cand_person p WHERE p.nik = a.nik);
ANALYZE implausible_keluarga;

-- name: new_implausible
CREATE UNLOGGED TABLE new_implausible AS
SELECT {{ implausible_columns }} FROM publish.implausible_span WITH NO DATA;

-- (one implausible_<rule> statement per rule runs here)

-- name: index_new_implausible
CREATE UNIQUE INDEX ON new_implausible (rule, no_kk);
ANALYZE new_implausible;

-- name: closing_implausible
{{ closing("implausible", "implausible_family", "no_kk", "new_implausible", ["rule", "no_kk"], implausible_columns) }};

-- name: opening_implausible
{{ opening("implausible", "new_implausible", ["rule", "no_kk"], implausible_columns) }};

-- name: apply_close_members
{{ apply_close("anggota", ["nik"], "nik") }};

-- name: apply_open_members
{{ apply_open("anggota", "nik", member_columns) }};

-- name: apply_close_families
{{ apply_close("keluarga", ["no_kk"], "no_kk") }};

-- name: apply_open_families
{{ apply_open("keluarga", "no_kk", family_columns) }};

-- name: apply_close_recipients
{{ apply_close("recipient", ["program", "nik"], "nik") }};

-- name: apply_open_recipients
{{ apply_open("recipient", "nik", recipient_columns) }};

-- name: apply_close_implausible
{{ apply_close("implausible", ["rule", "no_kk"], "no_kk") }};

-- name: apply_open_implausible
{{ apply_open("implausible", "no_kk", implausible_columns) }};

-- name: finish_implausible_counts
{{ carry_counts("implausible", "rule", "families") }};

-- Recipients per program and regency (the drift audit compares these).
-- name: finish_recipient_counts
{{ carry_counts("recipient", "program", "recipients") }};

-- The touches up to this round have been read into a version: the next candidate starts from it (or,
-- if this one is discarded, is built whole), so they are not kept.
-- name: finish_forget_touched
DELETE FROM registry.round_touched WHERE round_seq <= %(round_seq)s;

-- The spans changed by as much as a whole copy on a first build: the audit and the publication that
-- follow plan on fresh statistics (ANALYZE samples a fixed number of rows, whatever the size).
-- name: settle_analyze_spans
ANALYZE publish.keluarga_span;
ANALYZE publish.anggota_span;
ANALYZE publish.recipient_span;
ANALYZE publish.implausible_span;
