-- Feedback to one submission (contract section 3): the rows of ditolak.csv and the counts of
-- ringkasan.json. Parameters: pk (submission_pk), round_seq, cap (rows listed per reason).

-- name: rejected_rows
-- One output row per rejected input row: its row-level reasons; or, for the staged rows of a
-- submission refused because another of its files was refused whole, that file's reason; plus one
-- line (line empty) per file refused whole, saying why in the file's own words. Several reasons are
-- joined by ';'. At most `cap` rows are listed per (first) reason; ringkasan.json counts them all.
WITH sub AS (
    SELECT submission_pk, round_seq, source, status, reason_code, pesan
    FROM ingest.submission WHERE submission_pk = %(pk)s
),
staged AS (
    SELECT 'keluarga.csv' AS file_name, line_no, NULL::text AS nik, no_kk, 'pemda' AS source
    FROM staging.pemda_keluarga WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s
    UNION ALL
    SELECT 'anggota.csv', line_no, nik, no_kk, 'pemda'
    FROM staging.pemda_anggota WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s
    UNION ALL
    SELECT 'keluarga.csv', line_no, NULL, no_kk, 'bps'
    FROM staging.bps_keluarga WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s
    UNION ALL
    SELECT 'groundcheck.csv', line_no, NULL, no_kk, 'kemensos'
    FROM staging.kemensos_groundcheck WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s
    UNION ALL
    SELECT 'aduan.csv', line_no, nik, no_kk, 'aduan'
    FROM staging.aduan WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s
),
reasons AS (
    SELECT q.file_name, q.line_no, q.reason_code, q.field, NULL::text AS pesan
    FROM quality.rejection q WHERE q.round_seq = %(round_seq)s AND q.submission_pk = %(pk)s
    UNION ALL
    SELECT s.file_name, s.line_no, sub.reason_code, '',
           'Baris ini tidak diproses karena berkas ' || f.file_name || ' dalam kiriman yang sama ditolak '
           || 'seluruhnya: ' || coalesce(f.pesan, c.pesan)
    FROM staged s CROSS JOIN sub
    JOIN ingest.submission_file f ON f.submission_pk = sub.submission_pk AND f.status = 'REJECTED'
                                  AND f.reason_code IS NOT NULL AND f.file_name <> s.file_name
    JOIN quality.reason_code c ON c.code = f.reason_code
    WHERE sub.status = 'REJECTED' AND sub.reason_code IN ('FILE_UNREADABLE', 'FILE_MISSING_COLUMN')
      AND s.source = sub.source
      AND NOT EXISTS (SELECT 1 FROM quality.rejection q WHERE q.round_seq = %(round_seq)s
                      AND q.submission_pk = %(pk)s AND q.file_name = s.file_name AND q.line_no = s.line_no)
    UNION ALL
    SELECT f.file_name, NULL, coalesce(f.reason_code, sub.reason_code), '',
           coalesce(f.pesan, CASE WHEN f.reason_code IS NULL THEN sub.pesan END)
    FROM ingest.submission_file f CROSS JOIN sub
    WHERE f.submission_pk = sub.submission_pk AND f.status = 'REJECTED'
      AND (f.reason_code IS NOT NULL OR sub.reason_code IN ('MANIFEST_INVALID', 'CHECKSUM_MISMATCH',
                                                             'DUPLICATE_SUBMISSION', 'FILE_UNREADABLE'))
),
per_row AS (
    SELECT r.file_name, r.line_no,
           string_agg(r.reason_code, ';' ORDER BY r.reason_code, r.field) AS reason,
           min(r.reason_code) AS first_reason,
           string_agg(nullif(r.field, ''), ';' ORDER BY r.reason_code, r.field) AS field,
           string_agg(coalesce(r.pesan, CASE WHEN r.field <> '' THEN 'Kolom ' || r.field || ': ' ELSE '' END || c.pesan),
                      ' ' ORDER BY r.reason_code, r.field) AS message
    FROM reasons r JOIN quality.reason_code c ON c.code = r.reason_code
    GROUP BY r.file_name, r.line_no
),
listed AS (
    SELECT p.*, row_number() OVER (PARTITION BY p.first_reason ORDER BY p.file_name, p.line_no NULLS FIRST) AS n
    FROM per_row p
)
SELECT p.file_name AS file, p.line_no AS line,
       meta.mask_for_feedback(s.nik) AS nik, meta.mask_for_feedback(s.no_kk) AS no_kk,
       p.reason, p.field,
       p.message || coalesce(
           ' Saran: data Dukcapil memuat penduduk dengan nama, tanggal lahir dan jenis kelamin yang cocok, '
           || 'dengan NIK ' || meta.mask_for_feedback(ns.suggested_nik::text)
           || ' (berbeda pada digit ke-' || ns.digits_differing || ' dari NIK yang dikirim). '
           || 'Periksa KTP/KK orang ini, lalu kirim ulang barisnya dengan NIK yang benar.', '') AS message
FROM listed p
LEFT JOIN staged s ON s.file_name = p.file_name AND s.line_no = p.line_no
LEFT JOIN quality.nik_suggestion ns ON ns.round_seq = %(round_seq)s AND ns.submission_pk = %(pk)s
      AND ns.file_name = p.file_name AND ns.line_no = p.line_no
WHERE p.n <= %(cap)s OR p.line_no IS NULL
ORDER BY p.file_name, p.line_no NULLS FIRST;

-- name: rows_per_reason
-- Rejected rows per first reason (the reason ditolak.csv's cap is applied to).
SELECT first_reason, count(*) FROM (
    SELECT file_name, line_no, min(reason_code) AS first_reason
    FROM quality.rejection WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s
    GROUP BY file_name, line_no) r
GROUP BY first_reason ORDER BY first_reason;

-- name: file_counts
SELECT file_name, coalesce(rows_received, 0),
       (SELECT count(DISTINCT q.line_no) FROM quality.rejection q
        WHERE q.round_seq = %(round_seq)s AND q.submission_pk = f.submission_pk AND q.file_name = f.file_name)
FROM ingest.submission_file f WHERE f.submission_pk = %(pk)s ORDER BY file_name;

-- name: reason_counts
SELECT reason_code, count(DISTINCT (file_name, line_no))
FROM quality.rejection WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s GROUP BY reason_code;
