-- Same answers as 0007/0013, cheaper per row (measured on a 1M world's Dukcapil extract, 1.1M lines):
--  * meta.to_date_or_null was never inlined: its s::date is only STABLE (it reads DateStyle) inside a
--    function declared IMMUTABLE, so every call went through the SQL-function executor, 9 us a call,
--    even for NULL. 9.8 s of a 1M first load's Dukcapil stage went to it (tanggal_meninggal of every
--    line), and the merge's collection dates of every family row. make_date is IMMUTABLE: inlined.
--  * the placeholder check's back-reference regex '^(.)\1*$' (3 us a call) is one digit repeated;
--  * "16 digits" without a regex: 16 characters, none left once the digits are trimmed.
-- tests/test_rule_functions.py still proves them equal to the Python rules.

CREATE OR REPLACE FUNCTION meta.to_date_or_null(s text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN meta.is_iso_date(s)
                THEN make_date(substr(s, 1, 4)::int, substr(s, 6, 2)::int, substr(s, 9, 2)::int) END
$$;

CREATE OR REPLACE FUNCTION meta.is_placeholder(n text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (length(n) > 0 AND n = repeat(left(n, 1), length(n)))
        OR strpos('012345678901234567890123456789', n) > 0
        OR strpos('987654321098765432109876543210', n) > 0
$$;

CREATE OR REPLACE FUNCTION meta.number_structure_problem(n text, what text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN n IS NULL THEN NULL
        WHEN length(n) <> 16 OR ltrim(n, '0123456789') <> '' THEN what || ' is not 16 digits'
        WHEN meta.is_placeholder(n) THEN what || ' is a placeholder pattern'
        WHEN left(n, 2) NOT IN ('11','12','13','14','15','16','17','18','19','21','31','32','33','34','35','36',
                                '51','52','53','61','62','63','64','65','71','72','73','74','75','76','81','82',
                                '91','92','93','94','95','96')
            THEN what || ' has an invalid province code'
        WHEN right(n, 4) = '0000' THEN what || ' has serial 0000'
    END
$$;
