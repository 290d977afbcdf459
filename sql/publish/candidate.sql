-- Build candidate version %(version)s from the registry as merged by its round (write-audit-publish:
-- "write"), as what changed since version %(basis)s (the newest version, -1 when there is none).
-- Runs in one transaction with dtsen.publish.candidate, which picks how the families and persons to
-- look at again are found (changed_* after the rounds' recorded touches, or all_* for a whole
-- rebuild) and generates the ranking and recipient statements from the model and program files.
--
-- Every table below follows one pattern: build the new rows of the records looked at, close the
-- current span of each such record whose row differs or is gone (valid_to = version), and open a
-- span for each new row that no longer has a current one. A record not looked at keeps its span.

{% set member_columns %}nik, no_kk, nama, jenis_kelamin, tanggal_lahir, hubungan_keluarga, {% for a in member_attributes %}{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}{% endset %}
{% set family_columns %}no_kk, kode_wilayah, desil, skor_kesejahteraan, skor_sumber, jumlah_anggota, alamat, tanggal_pendataan, {% for a in family_attributes %}{{ a.name }}, {% endfor %}pengeluaran_per_kapita, tanggal_survei, groundcheck_tanggal, groundcheck_hasil{% endset %}
{% set recipient_columns %}program, nik, no_kk, kode_wilayah, desil, prioritas, komponen{% endset %}
{% set implausible_columns %}rule, no_kk, kode_wilayah, desil{% endset %}
{#- The pattern, once: `looked_at` (a relation with `by`) names the records looked at again, `new`
    their new rows, `key` a record's key, `columns` the span's row. -#}
{% macro close_spans(table, looked_at, by, new, key, columns) -%}
UPDATE publish.{{ table }}_span s SET valid_to = %(version)s
FROM {{ looked_at }} x
WHERE s.{{ by }} = x.{{ by }} AND s.valid_to IS NULL
  AND NOT EXISTS (SELECT 1 FROM {{ new }} n
                  WHERE {% for k in key %}n.{{ k }} = s.{{ k }} AND {% endfor %}(n.{{ columns | replace(", ", ", n.") }})
                        IS NOT DISTINCT FROM (s.{{ columns | replace(", ", ", s.") }}))
{%- endmacro %}
{#- Counts per version, `by` (program or rule) and regency: the basis's counts, plus the spans this
    version opened, minus those it closed. -#}
{% macro carry_counts(table, by, counted) -%}
INSERT INTO publish.{{ table }}_count (version, {{ by }}, kode_kabupaten, {{ counted }})
SELECT %(version)s, {{ by }}, kab, sum(n) FROM (
    SELECT {{ by }}, kode_kabupaten AS kab, {{ counted }} AS n FROM publish.{{ table }}_count WHERE version = %(basis)s
    UNION ALL
    SELECT {{ by }}, left(kode_wilayah, 4), count(*) FROM publish.{{ table }}_span WHERE valid_from = %(version)s GROUP BY 1, 2
    UNION ALL
    SELECT {{ by }}, left(kode_wilayah, 4), -count(*) FROM publish.{{ table }}_span WHERE valid_to = %(version)s GROUP BY 1, 2
) x
GROUP BY {{ by }}, kab
HAVING sum(n) <> 0
{%- endmacro %}
{% macro open_spans(table, new, key, columns) -%}
INSERT INTO publish.{{ table }}_span ({{ columns }}, valid_from)
SELECT n.{{ columns | replace(", ", ", n.") }}, %(version)s FROM {{ new }} n
WHERE NOT EXISTS (SELECT 1 FROM publish.{{ table }}_span s
                  WHERE {% for k in key %}s.{{ k }} = n.{{ k }} AND {% endfor %}s.valid_to IS NULL)
{%- endmacro %}

-- Persons whose rows may differ from the basis: what the merges since it touched, and whose Dukcapil
-- record changed since its snapshot (death decides eligibility).
-- name: changed_persons
CREATE TEMP TABLE cand_person ON COMMIT DROP AS
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
CREATE TEMP TABLE cand_family ON COMMIT DROP AS
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
CREATE TEMP TABLE cand_person ON COMMIT DROP AS
SELECT nik FROM registry.person WHERE is_open
UNION SELECT nik FROM publish.anggota_span WHERE valid_to IS NULL;

-- name: all_families
CREATE TEMP TABLE cand_family ON COMMIT DROP AS
SELECT no_kk FROM registry.family WHERE is_open
UNION SELECT no_kk FROM publish.keluarga_span WHERE valid_to IS NULL;

-- name: index_candidates
CREATE UNIQUE INDEX ON cand_person (nik);
CREATE UNIQUE INDEX ON cand_family (no_kk);
ANALYZE cand_person;
ANALYZE cand_family;

-- name: new_members
CREATE TEMP TABLE new_member ON COMMIT DROP AS
SELECT p.nik, m.no_kk, p.nama, p.jenis_kelamin, p.tanggal_lahir, m.hubungan_keluarga,
       {% for a in member_attributes %}p.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}
FROM cand_person c
JOIN registry.person p ON p.nik = c.nik
JOIN registry.membership m ON m.nik = p.nik AND m.valid_to_round IS NULL
WHERE p.is_open;

-- name: index_new_members
CREATE UNIQUE INDEX ON new_member (nik);
ANALYZE new_member;

-- name: close_members
{{ close_spans("anggota", "cand_person", "nik", "new_member", ["nik"], member_columns) }};

-- name: open_members
{{ open_spans("anggota", "new_member", ["nik"], member_columns) }};

-- The members of the families looked at again, in the new version: what their scores and
-- recipients are computed from (dtsen.publish.candidate passes this relation to the ranking).
-- name: rescore_members
CREATE TEMP TABLE rescore_member ON COMMIT DROP AS
SELECT %(version)s AS version, a.*
FROM cand_family c JOIN publish.anggota_span a ON a.no_kk = c.no_kk AND a.valid_to IS NULL;

-- name: analyze_rescore_members
ANALYZE rescore_member;

-- (rank_families, generated from the model file, runs here: CREATE TEMP TABLE rescored)

-- Every family's score: the re-scored ones, and the basis's score for the rest.
-- name: family_scores
CREATE TEMP TABLE family_score ON COMMIT DROP AS
SELECT no_kk, skor, sumber, jumlah_anggota FROM rescored
UNION ALL
SELECT k.no_kk, k.skor_kesejahteraan, k.skor_sumber, k.jumlah_anggota
FROM publish.keluarga_span k
WHERE k.valid_to IS NULL AND NOT EXISTS (SELECT 1 FROM cand_family c WHERE c.no_kk = k.no_kk);

-- Population-weighted national deciles, one ordering of every family's score (ties by no_kk, so the
-- cut is deterministic): each family's desil from the share of individuals ranked before it. Each
-- desil holds a tenth of individuals up to one family's size.
-- name: assign_desil
CREATE TEMP TABLE family_desil ON COMMIT DROP AS
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
CREATE TEMP TABLE desil_floor ON COMMIT DROP AS
SELECT desil, min(skor) AS skor FROM family_desil GROUP BY desil;

-- The new rows of the families looked at again and of every family whose desil moved.
-- name: new_families
CREATE TEMP TABLE new_family ON COMMIT DROP AS
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
CREATE TEMP TABLE recheck_family ON COMMIT DROP AS
SELECT no_kk FROM cand_family UNION SELECT no_kk FROM new_family;
CREATE UNIQUE INDEX ON recheck_family (no_kk);
ANALYZE recheck_family;

-- name: close_families
{{ close_spans("keluarga", "recheck_family", "no_kk", "new_family", ["no_kk"], family_columns) }};

-- name: open_families
{{ open_spans("keluarga", "new_family", ["no_kk"], family_columns) }};

-- name: recheck_members
CREATE TEMP TABLE recheck_member ON COMMIT DROP AS
SELECT %(version)s AS version, a.*
FROM recheck_family r JOIN publish.anggota_span a ON a.no_kk = r.no_kk AND a.valid_to IS NULL;

-- name: analyze_recheck
ANALYZE recheck_member;

-- name: new_recipients
CREATE TEMP TABLE new_recipient ON COMMIT DROP AS
SELECT {{ recipient_columns }} FROM publish.recipient_span WITH NO DATA;

-- (eligibility_context and one recipients_<program> statement per program run here)

-- name: index_new_recipients
CREATE UNIQUE INDEX ON new_recipient (program, nik);
ANALYZE new_recipient;

-- A family's recipient rows carry its no_kk: those of every family decided again are looked at.
-- name: close_recipients
{{ close_spans("recipient", "recheck_family", "no_kk", "new_recipient", ["program", "nik"], recipient_columns) }};

-- name: open_recipients
{{ open_spans("recipient", "new_recipient", ["program", "nik"], recipient_columns) }};

-- Implausible recipients (config/integrity.json, dtsen.integrity.config), kept as spans like the
-- recipients. Looked at: the families decided again and, when a rule compares a BPS measurement with
-- a desil's threshold (which moves with every version), every family measured within that window or
-- just out of it (found by the survey-date index).
-- name: implausible_families
CREATE TEMP TABLE implausible_family ON COMMIT DROP AS
SELECT no_kk FROM recheck_family
UNION
SELECT k.no_kk FROM publish.keluarga_span k
WHERE %(implausible_survey_months)s > 0 AND k.valid_to IS NULL AND k.tanggal_survei IS NOT NULL
  AND k.tanggal_survei > (%(date_from)s::date - make_interval(months => %(implausible_survey_months)s))::date - 2;

-- name: index_implausible_families
CREATE UNIQUE INDEX ON implausible_family (no_kk);
ANALYZE implausible_family;

-- name: new_implausible
CREATE TEMP TABLE new_implausible ON COMMIT DROP AS
SELECT {{ implausible_columns }} FROM publish.implausible_span WITH NO DATA;

-- (one implausible_<rule> statement per rule runs here)

-- name: index_new_implausible
CREATE UNIQUE INDEX ON new_implausible (rule, no_kk);
ANALYZE new_implausible;

-- name: close_implausible
{{ close_spans("implausible", "implausible_family", "no_kk", "new_implausible", ["rule", "no_kk"], implausible_columns) }};

-- name: open_implausible
{{ open_spans("implausible", "new_implausible", ["rule", "no_kk"], implausible_columns) }};

-- name: implausible_counts
{{ carry_counts("implausible", "rule", "families") }};

-- Recipients per program and regency (the drift audit compares these).
-- name: recipient_counts
{{ carry_counts("recipient", "program", "recipients") }};

-- The spans changed by as much as a whole copy on a first build: the audit and the publication that
-- follow plan on fresh statistics (ANALYZE samples a fixed number of rows, whatever the size).
-- name: analyze_spans
ANALYZE publish.keluarga_span;
ANALYZE publish.anggota_span;
ANALYZE publish.recipient_span;
ANALYZE publish.implausible_span;

-- The touches up to this round have been read into a version: the next candidate starts from it (or,
-- if this one is discarded, is built whole), so they are not kept.
-- name: forget_touched
DELETE FROM registry.round_touched WHERE round_seq <= %(round_seq)s;
