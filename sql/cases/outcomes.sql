-- What the channel that collects households' objections and proposals, and each region, are told at the
-- end of a round (src/dtsen/cases/outcomes.py): every objection or proposal that came in this round (its
-- case, or why none), and every earlier one whose case closed this round (its outcome). The subject
-- family's KK masked; pelapor_ref is the channel's own opaque reference. Parameters: %(round_seq)s,
-- %(regency)s (NULL: every region's; else a 4-digit regency code: that region's).

-- name: outcome_rows
SELECT sub.submission_id, a.line_no AS baris, a.pelapor_ref, a.jenis, a.alasan, a.program,
       meta.mask_for_feedback(lpad(a.no_kk::text, 16, '0')) AS no_kk, c.kode_wilayah, a.id_kasus,
       CASE WHEN c.id_kasus IS NULL THEN 'TIDAK_DIVERIFIKASI'
            WHEN c.state = 'RESOLVED' THEN 'SELESAI'
            WHEN c.state = 'EXPIRED' THEN 'KEDALUWARSA'
            ELSE 'DIPROSES' END AS status,
       CASE c.outcome WHEN 'CONFIRMED' THEN 'DATA_SESUAI' WHEN 'CORRECTED' THEN 'DATA_DIKOREKSI'
                      WHEN 'NOT_FOUND' THEN 'TIDAK_DITEMUKAN' WHEN 'MOVED' THEN 'PINDAH'
                      WHEN 'DECEASED' THEN 'MENINGGAL' WHEN 'WITHDRAWN' THEN 'DITARIK' END AS hasil,
       r.round_id AS putaran_aduan
FROM cases.aduan a
JOIN ingest.submission sub ON sub.submission_pk = a.submission_pk
JOIN ingest.round r ON r.round_seq = a.round_seq
LEFT JOIN cases.verification_case c ON c.id_kasus = a.id_kasus
WHERE (a.round_seq = %(round_seq)s OR c.closed_round = %(round_seq)s)
  AND (%(regency)s::text IS NULL OR left(c.kode_wilayah, 4) = %(regency)s)
ORDER BY r.round_id, sub.submission_id, a.line_no;

-- name: regencies
SELECT DISTINCT left(c.kode_wilayah, 4)
FROM cases.aduan a JOIN cases.verification_case c ON c.id_kasus = a.id_kasus
WHERE a.round_seq = %(round_seq)s OR c.closed_round = %(round_seq)s
ORDER BY 1;

-- name: counts
SELECT CASE WHEN c.id_kasus IS NULL THEN 'TIDAK_DIVERIFIKASI' WHEN c.state = 'RESOLVED' THEN 'SELESAI'
            WHEN c.state = 'EXPIRED' THEN 'KEDALUWARSA' ELSE 'DIPROSES' END AS status,
       count(*)
FROM cases.aduan a LEFT JOIN cases.verification_case c ON c.id_kasus = a.id_kasus
WHERE a.round_seq = %(round_seq)s OR c.closed_round = %(round_seq)s
GROUP BY 1 ORDER BY 1;
