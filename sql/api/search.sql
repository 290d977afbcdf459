-- The registry API's reads of a published version's recipients (dtsen.api.search). A version is
-- read through the spans valid at it (valid_from <= version < valid_to), by the spans' primary key
-- (program, nik, valid_from): pages are ranges of NIK after a boundary (keyset), never OFFSETs, so
-- the last page of a 20M-recipient list costs what the first does.
-- Parameters: version, program, patterns (text[] of region-code prefixes + '%', or NULL),
-- desil_min, desil_max, desil_in (smallint[] or NULL), page_size; after (the NIK a page starts
-- after); with_names (whether the caller's scope includes names).

{% macro recipients_of_version() -%}
FROM publish.recipient_span s
WHERE s.program = %(program)s
  AND s.valid_from <= %(version)s AND coalesce(s.valid_to, 2147483647) > %(version)s
  AND (%(patterns)s::text[] IS NULL OR s.kode_wilayah LIKE ANY (%(patterns)s::text[]))
  AND s.desil BETWEEN %(desil_min)s AND %(desil_max)s
  AND (%(desil_in)s::smallint[] IS NULL OR s.desil = ANY (%(desil_in)s::smallint[]))
{%- endmacro %}

-- name: boundaries
-- The last NIK of every full page, in order, and (last row, nik NULL) how many recipients match:
-- page k (from 1) starts after the boundary of page k-1.
SELECT nik, NULL::bigint AS total FROM (
    SELECT s.nik, row_number() OVER (ORDER BY s.nik) AS n
    {{ recipients_of_version() }}
) ranked
WHERE n %% %(page_size)s = 0
UNION ALL
SELECT NULL, count(*) FROM (SELECT 1 {{ recipients_of_version() }}) matched;

-- name: page
SELECT s.nik, s.no_kk, s.kode_wilayah, s.desil, s.prioritas,
       CASE WHEN %(with_names)s THEN (
           SELECT a.nama FROM publish.anggota_span a
           WHERE a.nik = s.nik AND a.valid_from <= %(version)s AND coalesce(a.valid_to, 2147483647) > %(version)s
       ) END AS nama
{{ recipients_of_version() }}
  AND s.nik > %(after)s
ORDER BY s.nik
LIMIT %(page_size)s;

-- name: person
-- One person among a version's recipients of the caller's programs (one row per program).
SELECT s.program, s.nik, s.no_kk, s.kode_wilayah, s.desil, s.prioritas,
       CASE WHEN %(with_names)s THEN (
           SELECT a.nama FROM publish.anggota_span a
           WHERE a.nik = s.nik AND a.valid_from <= %(version)s AND coalesce(a.valid_to, 2147483647) > %(version)s
       ) END AS nama
FROM publish.recipient_span s
WHERE s.program = ANY (%(programs)s::text[]) AND s.nik = %(nik)s
  AND s.valid_from <= %(version)s AND coalesce(s.valid_to, 2147483647) > %(version)s
ORDER BY s.program;

-- name: published_versions
SELECT version, published_at, status, manifest FROM publish.version
WHERE status IN ('PUBLISHED', 'SUPERSEDED') ORDER BY version;
