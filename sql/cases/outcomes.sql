-- What the channel that collects households' objections and proposals, and each region, are told at the
-- end of a round (src/dtsen/cases/outcomes.py): every objection or proposal that came in this round (its
-- case, or why none), and every earlier one whose case closed this round (its outcome). The subject
-- family's KK masked; pelapor_ref is the channel's own opaque reference. Parameters: %(round_seq)s,
-- %(regency)s (NULL: every region's; else a 4-digit regency code: that region's).

-- The round's rows, gathered once: each region's file is then a cheap read of them (one query per
-- region over cases.aduan took 25 s for 514 regions at 10M persons).
-- name: reset
DROP TABLE IF EXISTS pg_temp.aduan_outcome;

-- name: gather
CREATE TEMP TABLE aduan_outcome ON COMMIT DROP AS
WITH told AS (
    SELECT a.* FROM cases.aduan a WHERE a.round_seq = %(round_seq)s
    UNION ALL
    SELECT a.* FROM cases.verification_case c
    JOIN cases.aduan a ON a.id_kasus = c.id_kasus AND a.round_seq <> %(round_seq)s
    WHERE c.closed_round = %(round_seq)s
)
SELECT r.round_id AS putaran_aduan, sub.submission_id, a.line_no AS baris, a.pelapor_ref, a.jenis, a.alasan,
       a.program, meta.mask_for_feedback(lpad(a.no_kk::text, 16, '0')) AS no_kk, c.kode_wilayah, a.id_kasus,
       CASE WHEN c.id_kasus IS NULL THEN 'TIDAK_DIVERIFIKASI'
            WHEN c.state = 'RESOLVED' THEN 'SELESAI'
            WHEN c.state = 'EXPIRED' THEN 'KEDALUWARSA'
            ELSE 'DIPROSES' END AS status,
       CASE c.outcome WHEN 'CONFIRMED' THEN 'DATA_SESUAI' WHEN 'CORRECTED' THEN 'DATA_DIKOREKSI'
                      WHEN 'NOT_FOUND' THEN 'TIDAK_DITEMUKAN' WHEN 'MOVED' THEN 'PINDAH'
                      WHEN 'DECEASED' THEN 'MENINGGAL' WHEN 'WITHDRAWN' THEN 'DITARIK' END AS hasil,
       left(c.kode_wilayah, 4) AS kode_kabupaten
FROM told a
JOIN ingest.submission sub ON sub.submission_pk = a.submission_pk
JOIN ingest.round r ON r.round_seq = a.round_seq
LEFT JOIN cases.verification_case c ON c.id_kasus = a.id_kasus;

-- name: index_gathered
CREATE INDEX ON aduan_outcome (kode_kabupaten);
ANALYZE aduan_outcome;

-- name: outcome_rows
SELECT submission_id, baris, pelapor_ref, jenis, alasan, program, no_kk, kode_wilayah, id_kasus, status, hasil,
       putaran_aduan
FROM aduan_outcome
WHERE %(regency)s::text IS NULL OR kode_kabupaten = %(regency)s
ORDER BY putaran_aduan, submission_id, baris;

-- name: regencies
SELECT DISTINCT kode_kabupaten FROM aduan_outcome WHERE kode_kabupaten IS NOT NULL ORDER BY 1;

-- name: counts
SELECT status, count(*) FROM aduan_outcome GROUP BY 1 ORDER BY 1;
