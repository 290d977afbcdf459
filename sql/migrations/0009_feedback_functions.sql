-- Masking for reports that leave the warehouse: only the last 4 characters of a NIK / KK are shown
-- (digits 7-12 of a NIK reveal birth date and sex). The output always starts with '*', so a
-- spreadsheet never reads it as a formula; at most 12 stars are shown whatever the input length.
CREATE FUNCTION meta.mask_for_feedback(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v IS NULL THEN NULL
        WHEN char_length(v) <= 4 THEN repeat('*', char_length(v))
        ELSE repeat('*', least(char_length(v) - 4, 12)) || right(v, 4)
    END
$$;
