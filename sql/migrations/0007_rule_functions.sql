-- Row-rule building blocks for validation inside PostgreSQL. They mirror src/dtsen/domain/identity.py
-- exactly (same problem labels); tests/test_rule_functions.py proves both agree. All are IMMUTABLE and
-- PARALLEL SAFE so the planner can inline them into set-based validation queries.
-- CASE (not AND) orders the checks: SQL does not promise short-circuit evaluation, and a cast of a
-- non-numeric substring would raise.

CREATE FUNCTION meta.is_iso_date(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN s IS NULL OR s !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN false
        WHEN substr(s, 1, 4)::int = 0 OR substr(s, 6, 2)::int NOT BETWEEN 1 AND 12 THEN false
        ELSE substr(s, 9, 2)::int BETWEEN 1 AND extract(day FROM
                 make_date(substr(s, 1, 4)::int, substr(s, 6, 2)::int, 1) + interval '1 month - 1 day')::int
    END
$$;

CREATE FUNCTION meta.to_date_or_null(s text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN meta.is_iso_date(s) THEN s::date END
$$;

-- A day/month/2-digit year that exists in 19yy or 20yy (29 February needs a leap year).
CREATE FUNCTION meta.ddmmyy_exists(dd int, mm int, yy int) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT meta.is_iso_date(format('19%s-%s-%s', lpad(yy::text, 2, '0'), lpad(mm::text, 2, '0'), lpad(dd::text, 2, '0')))
        OR meta.is_iso_date(format('20%s-%s-%s', lpad(yy::text, 2, '0'), lpad(mm::text, 2, '0'), lpad(dd::text, 2, '0')))
$$;

-- All one digit, or a run stepping +1 / -1 (mod 10) all the way, e.g. 1234567890123456.
CREATE FUNCTION meta.is_placeholder(n text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT n ~ '^(.)\1*$'
        OR strpos('012345678901234567890123456789', n) > 0
        OR strpos('987654321098765432109876543210', n) > 0
$$;

CREATE FUNCTION meta.number_structure_problem(n text, what text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN n IS NULL THEN NULL
        WHEN n !~ '^[0-9]{16}$' THEN what || ' is not 16 digits'
        WHEN meta.is_placeholder(n) THEN what || ' is a placeholder pattern'
        WHEN left(n, 2) NOT IN ('11','12','13','14','15','16','17','18','19','21','31','32','33','34','35','36',
                                '51','52','53','61','62','63','64','65','71','72','73','74','75','76','81','82',
                                '91','92','93','94','95','96')
            THEN what || ' has an invalid province code'
        WHEN right(n, 4) = '0000' THEN what || ' has serial 0000'
    END
$$;

CREATE FUNCTION meta.nik_problem(n text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN meta.number_structure_problem(n, 'NIK') IS NOT NULL THEN meta.number_structure_problem(n, 'NIK')
        WHEN n IS NULL THEN NULL
        WHEN NOT (substr(n, 7, 2)::int BETWEEN 1 AND 31 OR substr(n, 7, 2)::int BETWEEN 41 AND 71)
            THEN 'NIK has an impossible birth day'
        WHEN NOT meta.ddmmyy_exists(substr(n, 7, 2)::int % 40, substr(n, 9, 2)::int, substr(n, 11, 2)::int)
            THEN 'NIK has an impossible birth date'
    END
$$;

CREATE FUNCTION meta.kk_problem(n text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN meta.number_structure_problem(n, 'KK') IS NOT NULL THEN meta.number_structure_problem(n, 'KK')
        WHEN n IS NULL THEN NULL
        WHEN NOT meta.ddmmyy_exists(substr(n, 7, 2)::int, substr(n, 9, 2)::int, substr(n, 11, 2)::int)
            THEN 'KK has an impossible issue date'
    END
$$;

-- For a well-formed NIK: does its embedded birth date / sex agree with the row's?
CREATE FUNCTION meta.nik_mismatch(n text, tanggal_lahir date, jenis_kelamin int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN n IS NULL OR tanggal_lahir IS NULL OR jenis_kelamin IS NULL THEN NULL
        WHEN (CASE WHEN substr(n, 7, 2)::int > 40 THEN 2 ELSE 1 END) <> jenis_kelamin
            THEN 'NIK sex digit disagrees with jenis_kelamin'
        WHEN substr(n, 7, 2)::int % 40 <> extract(day FROM tanggal_lahir)
          OR substr(n, 9, 2)::int <> extract(month FROM tanggal_lahir)
          OR substr(n, 11, 2)::int <> extract(year FROM tanggal_lahir)::int % 100
            THEN 'NIK birth date disagrees with tanggal_lahir'
    END
$$;
