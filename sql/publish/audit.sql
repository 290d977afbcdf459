-- Views the candidate-version audit (expectations/version_audit.json) runs on. A view cannot take
-- bound parameters, so dtsen.publish.audit renders these (psycopg's client-side binding): version,
-- previous (the published version before it, -1 when none), snapshot_pk (the round's Dukcapil
-- snapshot, NULL when none), previous_snapshot_pk (the previous version's, -1 when none), min_base.
--
-- The invariants are checked on what changed since the previous published version (which passed
-- them): members whose rows were opened since, members of families that vanished, persons whose
-- Dukcapil record changed since its snapshot, and families whose members changed or that are new.
-- The constraints of the spans hold the rest (one current row per NIK, per family, per recipient;
-- desil 1-10). With no previous version, everything is in scope.
--
-- members and families split into shares (the audit's sessions, dtsen.publish.audit): a session keeps
-- the keys from low_<key> up to high_<key> (NULL: open-ended; both NULL, the condition folds away).
-- A range, not a hash, so the planner estimates a share's rows from the key's histogram (a hash
-- condition is guessed at 0.5% of the rows, and the share probed half a million keys one by one).

{#- A span row in the audited version: the spans read directly, so their key indexes stay usable
    (publish.anggota and keluarga join every span with the version row, which hid them). -#}
{% macro in_version(alias) -%}
{{ alias }}.valid_from <= %(version)s AND coalesce({{ alias }}.valid_to, 2147483647) > %(version)s
{%- endmacro %}

{#- Said again on each table joined by the key: PostgreSQL carries equality across a join, not a range. -#}
{% macro in_share(key, column=None) -%}
(%(low_{{ key }})s::bigint IS NULL OR {{ column or key }} >= %(low_{{ key }})s::bigint)
      AND (%(high_{{ key }})s::bigint IS NULL OR {{ column or key }} < %(high_{{ key }})s::bigint)
{%- endmacro %}

-- name: members
WITH vanished_family AS (  -- a family with no row in the version whose row the previous one had
    SELECT k.no_kk FROM publish.keluarga_span k
    WHERE k.valid_to > %(previous)s AND k.valid_to <= %(version)s
      AND NOT EXISTS (SELECT 1 FROM publish.keluarga_span n WHERE n.no_kk = k.no_kk
                      AND n.valid_from <= %(version)s AND coalesce(n.valid_to, 2147483647) > %(version)s)
), scope AS (
    SELECT nik FROM publish.anggota_span WHERE valid_from > %(previous)s AND valid_from <= %(version)s
    UNION SELECT a.nik FROM vanished_family f JOIN publish.anggota_span a ON a.no_kk = f.no_kk AND {{ in_version("a") }}
    UNION SELECT nik FROM ref.dukcapil_change
          WHERE snapshot_pk > %(previous_snapshot_pk)s AND snapshot_pk <= coalesce(%(snapshot_pk)s, -1)
), shared AS (
    SELECT nik FROM scope WHERE {{ in_share("nik") }}
)
SELECT a.nik, a.no_kk, k.no_kk AS keluarga_no_kk,
       coalesce((d.status_hidup = 'MENINGGAL')::int, 0) AS meninggal_menurut_dukcapil
FROM shared s
JOIN publish.anggota_span a ON a.nik = s.nik AND {{ in_version("a") }} AND {{ in_share("nik", "a.nik") }}
LEFT JOIN publish.keluarga_span k ON k.no_kk = a.no_kk AND {{ in_version("k") }}
LEFT JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d ON d.nik = a.nik AND {{ in_share("nik", "d.nik") }}

-- Who heads a family changes only with its members' rows; a new family is checked whole. (A row
-- rewritten for its desil or score alone keeps its members: the spans' CHECK holds the desil range.)
-- name: families
WITH scope AS (
    SELECT no_kk FROM publish.anggota_span WHERE valid_from > %(previous)s AND valid_from <= %(version)s
    UNION SELECT no_kk FROM publish.anggota_span WHERE valid_to > %(previous)s AND valid_to <= %(version)s
    UNION SELECT k.no_kk FROM publish.keluarga_span k
          WHERE k.valid_from > %(previous)s AND k.valid_from <= %(version)s
            AND NOT EXISTS (SELECT 1 FROM publish.keluarga_span p WHERE p.no_kk = k.no_kk
                            AND p.valid_from <= %(previous)s AND coalesce(p.valid_to, 2147483647) > %(previous)s)
), shared AS (
    SELECT no_kk FROM scope WHERE {{ in_share("no_kk") }}
)
-- one grouped join (not a join with the heads counted apart): hash joins for a large scope, index
-- probes per family for a small one (the probe profile, dtsen.publish.audit_shares)
SELECT k.no_kk, k.desil, count(*) FILTER (WHERE a.hubungan_keluarga = 1) AS jumlah_kepala
FROM shared s
JOIN publish.keluarga_span k ON k.no_kk = s.no_kk AND {{ in_version("k") }} AND {{ in_share("no_kk", "k.no_kk") }}
LEFT JOIN publish.anggota_span a ON a.no_kk = k.no_kk AND {{ in_version("a") }} AND {{ in_share("no_kk", "a.no_kk") }}
GROUP BY k.no_kk, k.desil

-- The desil shares of individuals, from the counts the candidate kept of its whole ordering.
-- name: desil_shares
SELECT d.key::smallint AS desil,
       (d.value ->> 'individuals')::float8 / sum((d.value ->> 'individuals')::float8) OVER () AS share
FROM publish.version v, jsonb_each(v.counts -> 'desil') d
WHERE v.version = %(version)s

-- Recipients added where they are now, removed where they were, per regency (first 4 digits of
-- kode_wilayah) and program, as shares of the previous version's recipients there (at least
-- min_base): the previous version's counts, and the spans opened and closed since.
-- name: drift
WITH added AS (
    SELECT s.program, left(s.kode_wilayah, 4) AS kab, count(*) AS n FROM publish.recipient_span s
    WHERE s.valid_from > %(previous)s AND s.valid_from <= %(version)s AND (s.valid_to IS NULL OR s.valid_to > %(version)s)
      AND NOT EXISTS (SELECT 1 FROM publish.recipient_span p WHERE p.program = s.program AND p.nik = s.nik
                      AND p.valid_from <= %(previous)s AND (p.valid_to IS NULL OR p.valid_to > %(previous)s))
    GROUP BY 1, 2
), removed AS (
    SELECT s.program, left(s.kode_wilayah, 4) AS kab, count(*) AS n FROM publish.recipient_span s
    WHERE s.valid_to > %(previous)s AND s.valid_to <= %(version)s AND s.valid_from <= %(previous)s
      AND NOT EXISTS (SELECT 1 FROM publish.recipient_span c WHERE c.program = s.program AND c.nik = s.nik
                      AND c.valid_from <= %(version)s AND (c.valid_to IS NULL OR c.valid_to > %(version)s))
    GROUP BY 1, 2
), base AS (
    SELECT program, kode_kabupaten AS kab, recipients AS n FROM publish.recipient_count WHERE version = %(previous)s
),
pairs AS (SELECT program, kab FROM base UNION SELECT program, kab FROM added UNION SELECT program, kab FROM removed)
SELECT k.kab AS kode_kabupaten, k.program, coalesce(b.n, 0) AS sebelumnya,
       coalesce(a.n, 0) AS ditambah, coalesce(r.n, 0) AS dikeluarkan,
       coalesce(a.n, 0)::float8 / greatest(coalesce(b.n, 0), %(min_base)s) AS added_share,
       coalesce(r.n, 0)::float8 / greatest(coalesce(b.n, 0), %(min_base)s) AS removed_share
FROM pairs k
LEFT JOIN base b ON b.program = k.program AND b.kab = k.kab
LEFT JOIN added a ON a.program = k.program AND a.kab = k.kab
LEFT JOIN removed r ON r.program = k.program AND r.kab = k.kab
WHERE %(previous)s > 0
