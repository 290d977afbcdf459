-- NIK-repair candidates (issue 4 item 4): blocking in SQL, scoring in Python (rapidfuzz).
-- The rows to repair are the pemda member rows rejected NIK_NOT_IN_DUKCAPIL or NIK_MISMATCH whose
-- NIK is at least 16 digits. Blocking uses the NIK's structure: a person's NIK starts with the
-- district of registration and the birth date (day + 40 for women), so the Dukcapil persons with the
-- row's birth date and sex in a district are one index range of ref.dukcapil's primary key.
-- Two districts are searched: the one the submitted NIK names (serial and birth-digit typos) and the
-- family's own district (a NIK typed with a wrong district). Parameters: round_seq, snapshot_pk.

-- name: query_rows
CREATE TEMP TABLE nik_repair_query ON COMMIT DROP AS
SELECT r.submission_pk, r.file_name, r.line_no, s.no_kk, s.nik AS nik_text, s.nama,
       meta.to_date_or_null(s.tanggal_lahir) AS tanggal_lahir,
       CASE WHEN s.jenis_kelamin IN ('1', '2') THEN s.jenis_kelamin::smallint END AS jenis_kelamin,
       NULL::text AS kode_wilayah_keluarga
FROM (SELECT DISTINCT submission_pk, file_name, line_no FROM quality.rejection
      WHERE round_seq = %(round_seq)s AND file_name = 'anggota.csv'
        AND reason_code IN ('NIK_NOT_IN_DUKCAPIL', 'NIK_MISMATCH')) r
JOIN staging.pemda_anggota s
  ON s.round_seq = %(round_seq)s AND s.submission_pk = r.submission_pk AND s.line_no = r.line_no
WHERE s.nik ~ '^[0-9]{16}$' AND nullif(btrim(s.nama), '') IS NOT NULL

-- name: family_region_from_submission
UPDATE nik_repair_query q SET kode_wilayah_keluarga = k.kode_wilayah
FROM staging.pemda_keluarga k
WHERE k.round_seq = %(round_seq)s AND k.submission_pk = q.submission_pk AND k.no_kk = q.no_kk
  AND k.kode_wilayah ~ '^[0-9]{10}$'

-- name: family_region_from_registry
UPDATE nik_repair_query q SET kode_wilayah_keluarga = f.kode_wilayah
FROM registry.family f
WHERE q.kode_wilayah_keluarga IS NULL AND q.no_kk ~ '^[0-9]{16}$' AND f.no_kk = q.no_kk::bigint

-- name: blocks
CREATE TEMP TABLE nik_repair_block ON COMMIT DROP AS
SELECT DISTINCT q.submission_pk, q.line_no, b.prefix::bigint AS prefix,
       dense_rank() OVER (ORDER BY q.submission_pk, q.line_no) / %(batch_rows)s AS batch
FROM nik_repair_query q
CROSS JOIN LATERAL (
    SELECT d || lpad((extract(day FROM q.tanggal_lahir)::int + CASE WHEN q.jenis_kelamin = 2 THEN 40 ELSE 0 END)::text, 2, '0')
           || to_char(q.tanggal_lahir, 'MMYY') AS prefix
    FROM (VALUES (left(q.nik_text, 6)), (left(q.kode_wilayah_keluarga, 6))) v(d)
    WHERE d IS NOT NULL
) b
WHERE q.tanggal_lahir IS NOT NULL AND q.jenis_kelamin IS NOT NULL

-- name: batches
SELECT coalesce(max(batch), -1) FROM nik_repair_block

-- name: candidates
SELECT DISTINCT q.submission_pk, q.line_no, q.nik_text, q.nama, coalesce(q.kode_wilayah_keluarga, '') AS wilayah,
       d.nik::text AS cand_nik, d.nama AS cand_nama, coalesce(d.kode_wilayah, '') AS cand_wilayah
FROM nik_repair_block b
JOIN nik_repair_query q ON q.submission_pk = b.submission_pk AND q.line_no = b.line_no
JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d
  ON d.nik BETWEEN b.prefix * 10000 AND b.prefix * 10000 + 9999
 AND d.status_hidup = 'HIDUP' AND d.jenis_kelamin = q.jenis_kelamin AND d.tanggal_lahir = q.tanggal_lahir
WHERE b.batch = %(batch)s AND d.nik::text <> q.nik_text
