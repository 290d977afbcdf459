-- Cross-row and cross-source rules of one round (contract section 2), set-based.
-- Runs after the row-level suites wrote their rejections. Only rows without a row-level rejection
-- take part ("clean" rows): a malformed NIK is reported as NIK_FORMAT, never also as
-- NIK_NOT_IN_DUKCAPIL. Order: duplicates; then the independent identity/existence rules; then
-- family structure on what would really apply. Parameters: round_seq, snapshot_pk (NULL when the
-- round has no Dukcapil snapshot: the Dukcapil rules are then skipped).

-- name: clean_anggota
CREATE TEMP TABLE clean_anggota ON COMMIT DROP AS
SELECT s.submission_pk, s.line_no, s.operasi, s.nik::bigint AS nik, s.no_kk::bigint AS no_kk,
       s.hubungan_keluarga::smallint AS hubungan
FROM staging.pemda_anggota s
JOIN ingest.submission sub ON sub.submission_pk = s.submission_pk AND sub.status = 'STAGED'
WHERE s.round_seq = %(round_seq)s
  AND NOT EXISTS (SELECT 1 FROM quality.rejection q
                  WHERE q.round_seq = %(round_seq)s AND q.submission_pk = s.submission_pk
                    AND q.file_name = 'anggota.csv' AND q.line_no = s.line_no);

-- name: clean_keluarga
CREATE TEMP TABLE clean_keluarga ON COMMIT DROP AS
SELECT 'keluarga.csv'::text AS file_name, 'pemda'::text AS source, s.submission_pk, s.line_no, s.operasi,
       s.no_kk::bigint AS no_kk
FROM staging.pemda_keluarga s
JOIN ingest.submission sub ON sub.submission_pk = s.submission_pk AND sub.status = 'STAGED'
WHERE s.round_seq = %(round_seq)s
  AND NOT EXISTS (SELECT 1 FROM quality.rejection q
                  WHERE q.round_seq = %(round_seq)s AND q.submission_pk = s.submission_pk
                    AND q.file_name = 'keluarga.csv' AND q.line_no = s.line_no)
UNION ALL
SELECT 'keluarga.csv', 'bps', s.submission_pk, s.line_no, NULL, s.no_kk::bigint
FROM staging.bps_keluarga s
JOIN ingest.submission sub ON sub.submission_pk = s.submission_pk AND sub.status = 'STAGED'
WHERE s.round_seq = %(round_seq)s
  AND NOT EXISTS (SELECT 1 FROM quality.rejection q
                  WHERE q.round_seq = %(round_seq)s AND q.submission_pk = s.submission_pk
                    AND q.file_name = 'keluarga.csv' AND q.line_no = s.line_no)
UNION ALL
SELECT 'groundcheck.csv', 'kemensos', s.submission_pk, s.line_no, NULL, s.no_kk::bigint
FROM staging.kemensos_groundcheck s
JOIN ingest.submission sub ON sub.submission_pk = s.submission_pk AND sub.status = 'STAGED'
WHERE s.round_seq = %(round_seq)s
  AND NOT EXISTS (SELECT 1 FROM quality.rejection q
                  WHERE q.round_seq = %(round_seq)s AND q.submission_pk = s.submission_pk
                    AND q.file_name = 'groundcheck.csv' AND q.line_no = s.line_no);

-- name: index_clean_rows
CREATE INDEX ON clean_anggota (nik);
CREATE INDEX ON clean_anggota (submission_pk, no_kk);
CREATE INDEX ON clean_keluarga (submission_pk, no_kk);
-- the drop_* steps delete by line: with these, a misestimated rejection count cannot turn them into
-- a scan of the clean rows per rejection (seen: minutes on a 1M-person round)
CREATE INDEX ON clean_anggota (submission_pk, line_no);
CREATE INDEX ON clean_keluarga (submission_pk, file_name, line_no);
ANALYZE clean_anggota;
ANALYZE clean_keluarga;

-- name: duplicate_in_file
-- All copies of a key repeated within one file are rejected.
INSERT INTO quality.rejection (round_seq, submission_pk, file_name, line_no, reason_code, field, key_value)
SELECT %(round_seq)s, submission_pk, 'anggota.csv', line_no, 'DUPLICATE_IN_FILE', 'nik', nik::text
FROM (SELECT *, count(*) OVER (PARTITION BY submission_pk, nik) AS copies FROM clean_anggota) a
WHERE copies > 1
UNION ALL
SELECT %(round_seq)s, submission_pk, file_name, line_no, 'DUPLICATE_IN_FILE', 'no_kk', no_kk::text
FROM (SELECT *, count(*) OVER (PARTITION BY submission_pk, file_name, no_kk) AS copies FROM clean_keluarga) k
WHERE copies > 1
ON CONFLICT DO NOTHING;

-- name: drop_duplicate_members
DELETE FROM clean_anggota c USING quality.rejection q
WHERE q.round_seq = %(round_seq)s AND q.submission_pk = c.submission_pk AND q.file_name = 'anggota.csv'
  AND q.line_no = c.line_no AND q.reason_code = 'DUPLICATE_IN_FILE';

-- name: drop_duplicate_families
DELETE FROM clean_keluarga c USING quality.rejection q
WHERE q.round_seq = %(round_seq)s AND q.submission_pk = c.submission_pk AND q.file_name = c.file_name
  AND q.line_no = c.line_no AND q.reason_code = 'DUPLICATE_IN_FILE';

-- name: identity_and_existence
-- Independent rules on the remaining rows; a row may fail several.
INSERT INTO quality.rejection (round_seq, submission_pk, file_name, line_no, reason_code, field, key_value)
-- a member joins a family that is neither delivered (clean) in this submission nor open in the registry
SELECT %(round_seq)s, a.submission_pk, 'anggota.csv', a.line_no, 'FAMILY_UNKNOWN', 'no_kk', a.nik::text
FROM clean_anggota a
WHERE a.operasi IN ('TAMBAH', 'UBAH')
  AND NOT EXISTS (SELECT 1 FROM clean_keluarga k
                  WHERE k.source = 'pemda' AND k.submission_pk = a.submission_pk AND k.no_kk = a.no_kk
                    AND k.operasi <> 'HAPUS')
  AND NOT EXISTS (SELECT 1 FROM registry.family f WHERE f.no_kk = a.no_kk AND f.is_open)
UNION ALL
SELECT %(round_seq)s, a.submission_pk, 'anggota.csv', a.line_no, 'NIK_NOT_IN_DUKCAPIL', 'nik', a.nik::text
FROM clean_anggota a
WHERE %(snapshot_pk)s::int IS NOT NULL AND a.operasi IN ('TAMBAH', 'UBAH')
  AND NOT EXISTS (SELECT 1 FROM ref.dukcapil_as_of(%(snapshot_pk)s) d WHERE d.nik = a.nik)
  AND NOT EXISTS (SELECT 1 FROM ref.dukcapil_change c
                  WHERE c.snapshot_pk = %(snapshot_pk)s AND c.nik = a.nik AND c.change = 'CONFLICTING')
UNION ALL
SELECT %(round_seq)s, a.submission_pk, 'anggota.csv', a.line_no, 'NIK_DECEASED', 'nik', a.nik::text
FROM clean_anggota a
JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d ON d.nik = a.nik AND d.status_hidup = 'MENINGGAL'
WHERE a.operasi IN ('TAMBAH', 'UBAH')
  AND NOT EXISTS (SELECT 1 FROM ref.dukcapil_change c
                  WHERE c.snapshot_pk = %(snapshot_pk)s AND c.nik = a.nik AND c.change = 'CONFLICTING')
UNION ALL
-- the extract lists the NIK twice with different content: not the region's error, and nothing to
-- check it against; the row is held until Dukcapil corrects its extract
SELECT %(round_seq)s, a.submission_pk, 'anggota.csv', a.line_no, 'NIK_DUKCAPIL_CONFLICT', 'nik', a.nik::text
FROM clean_anggota a
JOIN ref.dukcapil_change c ON c.snapshot_pk = %(snapshot_pk)s AND c.nik = a.nik AND c.change = 'CONFLICTING'
WHERE a.operasi IN ('TAMBAH', 'UBAH')
UNION ALL
SELECT %(round_seq)s, a.submission_pk, 'anggota.csv', a.line_no, 'RECORD_NOT_FOUND', 'nik', a.nik::text
FROM clean_anggota a
WHERE a.operasi IN ('UBAH', 'HAPUS')
  AND NOT EXISTS (SELECT 1 FROM registry.person p WHERE p.nik = a.nik AND p.is_open)
UNION ALL
SELECT %(round_seq)s, a.submission_pk, 'anggota.csv', a.line_no, 'RECORD_EXISTS', 'nik', a.nik::text
FROM clean_anggota a
WHERE a.operasi = 'TAMBAH' AND EXISTS (SELECT 1 FROM registry.person p WHERE p.nik = a.nik AND p.is_open)
UNION ALL
SELECT %(round_seq)s, k.submission_pk, k.file_name, k.line_no, 'RECORD_NOT_FOUND', 'no_kk', k.no_kk::text
FROM clean_keluarga k
WHERE coalesce(k.operasi, 'UBAH') IN ('UBAH', 'HAPUS')
  AND NOT EXISTS (SELECT 1 FROM registry.family f WHERE f.no_kk = k.no_kk AND f.is_open)
  -- BPS / Kemensos may measure a family that a region adds in this same round. Written as an anti
  -- join: as `NOT (source <> 'pemda' AND EXISTS ...)` the planner costed the filter as a subplan
  -- per row and joined the registry by a nested loop without its index (8 minutes at 1M persons)
  AND NOT EXISTS (SELECT 1 FROM clean_keluarga t
                  WHERE k.source <> 'pemda' AND t.source = 'pemda' AND t.operasi = 'TAMBAH' AND t.no_kk = k.no_kk)
UNION ALL
SELECT %(round_seq)s, k.submission_pk, k.file_name, k.line_no, 'RECORD_EXISTS', 'no_kk', k.no_kk::text
FROM clean_keluarga k
WHERE k.operasi = 'TAMBAH' AND EXISTS (SELECT 1 FROM registry.family f WHERE f.no_kk = k.no_kk AND f.is_open)
ON CONFLICT DO NOTHING;

-- name: case_results
-- A Kemensos field result naming a verification case (id_kasus, an extension) answers a live case of
-- its family (OPEN, ASSIGNED or VISITED); an unknown case, another family's, or one already resolved or
-- expired is CASE_UNKNOWN. The casts are guarded (a row's conditions are not evaluated in order).
INSERT INTO quality.rejection (round_seq, submission_pk, file_name, line_no, reason_code, field, key_value)
SELECT %(round_seq)s, s.submission_pk, 'groundcheck.csv', s.line_no, 'CASE_UNKNOWN', 'id_kasus', s.no_kk
FROM staging.kemensos_groundcheck s
JOIN ingest.submission sub ON sub.submission_pk = s.submission_pk AND sub.status = 'STAGED'
WHERE s.round_seq = %(round_seq)s AND s.id_kasus ~ '^[1-9][0-9]*$' AND length(s.id_kasus) <= 18  -- else the suite's
  AND NOT EXISTS (
      SELECT 1 FROM cases.verification_case c
      WHERE c.id_kasus = CASE WHEN s.id_kasus ~ '^[1-9][0-9]*$' AND length(s.id_kasus) <= 18
                              THEN s.id_kasus::bigint END
        AND c.no_kk = CASE WHEN s.no_kk ~ '^[0-9]{16}$' THEN s.no_kk::bigint END
        AND c.state IN ('OPEN', 'ASSIGNED', 'VISITED'))
ON CONFLICT DO NOTHING;

-- name: aduan_subjects
-- A household's objection or proposal (aduan.csv, an extension) names its family by no_kk and/or a
-- member's nik. An objection (SANGGAH) is about a family in the registry: its no_kk an open family, its
-- nik an open member (of that family, when both are given); else RECORD_NOT_FOUND. A proposal (USUL)
-- may name a family not registered yet (a nik not registered may be a member to add): such a family
-- needs the family card's no_kk and the village it lives in (REQUIRED_MISSING). A nik given must be in
-- the Dukcapil reference (when the round has one); the program named must be one of the configured
-- programs (%(programs)s). Identical rows are not duplicates: each is a reporter's, counted on its case.
WITH clean AS (
    SELECT s.submission_pk, s.line_no, s.jenis, s.program, s.kode_wilayah,
           CASE WHEN s.no_kk ~ '^[0-9]{16}$' THEN s.no_kk::bigint END AS no_kk,
           CASE WHEN s.nik ~ '^[0-9]{16}$' THEN s.nik::bigint END AS nik
    FROM staging.aduan s
    JOIN ingest.submission sub ON sub.submission_pk = s.submission_pk AND sub.status = 'STAGED'
    WHERE s.round_seq = %(round_seq)s
      AND NOT EXISTS (SELECT 1 FROM quality.rejection q WHERE q.round_seq = %(round_seq)s
                      AND q.submission_pk = s.submission_pk AND q.file_name = 'aduan.csv' AND q.line_no = s.line_no)
), subject AS (
    SELECT c.*, coalesce(c.no_kk, c.nik)::text AS key_value, m.no_kk AS family_of_nik,
           EXISTS (SELECT 1 FROM registry.family f WHERE f.no_kk = c.no_kk AND f.is_open) AS family_registered
    FROM clean c
    LEFT JOIN registry.membership m ON m.nik = c.nik AND m.valid_to_round IS NULL
)
INSERT INTO quality.rejection (round_seq, submission_pk, file_name, line_no, reason_code, field, key_value)
SELECT %(round_seq)s, submission_pk, 'aduan.csv', line_no, 'RECORD_NOT_FOUND', 'no_kk', key_value
FROM subject WHERE jenis = 'SANGGAH' AND no_kk IS NOT NULL AND NOT family_registered
UNION ALL
SELECT %(round_seq)s, submission_pk, 'aduan.csv', line_no, 'RECORD_NOT_FOUND', 'nik', key_value
FROM subject
WHERE jenis = 'SANGGAH' AND nik IS NOT NULL AND (family_of_nik IS NULL OR family_of_nik <> coalesce(no_kk, family_of_nik))
UNION ALL
SELECT %(round_seq)s, submission_pk, 'aduan.csv', line_no, 'REQUIRED_MISSING', 'no_kk', key_value
FROM subject WHERE jenis = 'USUL' AND no_kk IS NULL AND family_of_nik IS NULL
UNION ALL
SELECT %(round_seq)s, submission_pk, 'aduan.csv', line_no, 'REQUIRED_MISSING', 'kode_wilayah', key_value
FROM subject
WHERE jenis = 'USUL' AND kode_wilayah IS NULL AND NOT family_registered AND family_of_nik IS NULL
UNION ALL
SELECT %(round_seq)s, s.submission_pk, 'aduan.csv', s.line_no, 'NIK_NOT_IN_DUKCAPIL', 'nik', s.key_value
FROM subject s
WHERE %(snapshot_pk)s::int IS NOT NULL AND s.nik IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM ref.dukcapil_as_of(%(snapshot_pk)s) d WHERE d.nik = s.nik)
UNION ALL
SELECT %(round_seq)s, submission_pk, 'aduan.csv', line_no, 'CODE_OUT_OF_DOMAIN', 'program', key_value
FROM subject WHERE program IS NOT NULL AND program <> ALL(%(programs)s::text[])
ON CONFLICT DO NOTHING;

-- name: drop_rejected_members
DELETE FROM clean_anggota c USING quality.rejection q
WHERE q.round_seq = %(round_seq)s AND q.submission_pk = c.submission_pk AND q.file_name = 'anggota.csv'
  AND q.line_no = c.line_no;

-- name: drop_rejected_families
DELETE FROM clean_keluarga c USING quality.rejection q
WHERE q.round_seq = %(round_seq)s AND q.submission_pk = c.submission_pk AND q.file_name = c.file_name
  AND q.line_no = c.line_no;

-- name: family_structure
-- Per pemda submission: apply its remaining member rows to the registry's open memberships and
-- count heads in every family it touches (targets, families people leave, families it delivers).
-- A family with members must have exactly one head; a new family must have members. All rows of a
-- failing family are rejected: its keluarga row, members placed in it, members leaving it.
WITH moves AS (
    SELECT a.submission_pk, a.line_no, a.operasi, a.nik, a.no_kk AS target,
           m.no_kk AS source_family,
           coalesce(a.hubungan, CASE WHEN m.no_kk = a.no_kk THEN m.hubungan_keluarga END,
                    m.hubungan_keluarga) AS hubungan_after
    FROM clean_anggota a
    LEFT JOIN registry.membership m ON m.nik = a.nik AND m.valid_to_round IS NULL
),
touched AS (
    SELECT submission_pk, target AS no_kk FROM moves WHERE operasi <> 'HAPUS'
    UNION SELECT submission_pk, source_family FROM moves WHERE source_family IS NOT NULL
    UNION SELECT submission_pk, no_kk FROM clean_keluarga WHERE source = 'pemda' AND operasi IN ('TAMBAH', 'UBAH')
),
members_after AS (
    -- registry members the submission does not move or remove
    SELECT t.submission_pk, t.no_kk, m.hubungan_keluarga AS hubungan
    FROM touched t
    JOIN registry.membership m ON m.no_kk = t.no_kk AND m.valid_to_round IS NULL
    WHERE NOT EXISTS (SELECT 1 FROM moves mv WHERE mv.submission_pk = t.submission_pk AND mv.nik = m.nik)
    UNION ALL
    -- members the submission places in the family
    SELECT mv.submission_pk, mv.target, mv.hubungan_after
    FROM moves mv WHERE mv.operasi <> 'HAPUS'
),
failing AS (
    SELECT t.submission_pk, t.no_kk
    FROM touched t
    LEFT JOIN members_after ma ON ma.submission_pk = t.submission_pk AND ma.no_kk = t.no_kk
    WHERE NOT EXISTS (SELECT 1 FROM clean_keluarga k WHERE k.submission_pk = t.submission_pk
                        AND k.no_kk = t.no_kk AND k.operasi = 'HAPUS')
    GROUP BY t.submission_pk, t.no_kk
    HAVING (count(ma.no_kk) > 0 AND count(*) FILTER (WHERE ma.hubungan = 1) <> 1)
        OR (count(ma.no_kk) = 0 AND EXISTS (SELECT 1 FROM clean_keluarga k WHERE k.submission_pk = t.submission_pk
                                              AND k.no_kk = t.no_kk AND k.operasi = 'TAMBAH'))
)
INSERT INTO quality.rejection (round_seq, submission_pk, file_name, line_no, reason_code, field, key_value)
SELECT %(round_seq)s, k.submission_pk, 'keluarga.csv', k.line_no, 'FAMILY_STRUCTURE', 'hubungan_keluarga', k.no_kk::text
FROM clean_keluarga k JOIN failing f ON f.submission_pk = k.submission_pk AND f.no_kk = k.no_kk
WHERE k.source = 'pemda'
UNION ALL
SELECT %(round_seq)s, mv.submission_pk, 'anggota.csv', mv.line_no, 'FAMILY_STRUCTURE', 'hubungan_keluarga', mv.nik::text
FROM moves mv JOIN failing f ON f.submission_pk = mv.submission_pk
                             AND (f.no_kk = mv.target OR f.no_kk = mv.source_family)
ON CONFLICT DO NOTHING;
