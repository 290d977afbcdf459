-- Merge one validated round into the registry, set-based, inside ONE transaction (the caller's):
-- a crash at any point leaves the registry as it was. Parameters: round_seq, snapshot_pk.
-- Input: the rows of VALIDATED submissions without any rejection ("accepted").
-- Source priority (domain.md): identity Dukcapil > pemda; family attributes BPS > Kemensos > pemda;
-- within one priority the later collection date wins, then the later submitted_at.
-- What the merge works out goes to unlogged tables in schema scratch_merge, not temporary ones, so
-- PostgreSQL may plan their statements in parallel (migration 0042); merge/scratch.sql drops them
-- before the merge commits.
-- The statements marked `-- planner: probe` look the round's families, persons and memberships up
-- in the registry by key. Hash joins would scan every registry row (289M nationally) once per
-- statement; index probes cost what the round costs. dtsen.merge switches the planner to probes when
-- the round is small against the registry (below PROBE_FRACTION); for a round that touches most of
-- the registry, scans win. A quarterly's Dukcapil deaths and family updates probe too: unmarked, a
-- 1M registry's quarterly merge scanned persons once, memberships four times and families five times.

{% from "merge/accepted.sql" import accepted %}

-- name: accepted_keluarga
CREATE UNLOGGED TABLE scratch_merge.acc_keluarga AS
SELECT s.submission_pk, s.line_no, s.submitted_at, s.operasi, s.no_kk::bigint AS no_kk, s.kode_wilayah, s.alamat,
       s.tanggal_pendataan::date AS tanggal_pendataan,
       {% for a in family_attributes %}s.{{ a.name }}::{{ a.sql_type }} AS {{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, s.alasan_hapus,
       row_number() OVER (PARTITION BY s.no_kk::bigint ORDER BY s.tanggal_pendataan::date DESC NULLS LAST,
                          s.submitted_at DESC NULLS LAST, s.submission_pk DESC) AS rnk
FROM {{ accepted("pemda_keluarga", "keluarga.csv") }};

-- name: accepted_bps
CREATE UNLOGGED TABLE scratch_merge.acc_bps AS
SELECT s.submission_pk, s.line_no, s.submitted_at, s.no_kk::bigint AS no_kk, s.tanggal_survei::date AS tanggal_survei,
       {% for a in family_attributes %}s.{{ a.name }}::{{ a.sql_type }} AS {{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, s.pengeluaran_per_kapita::bigint AS pengeluaran_per_kapita,
       row_number() OVER (PARTITION BY s.no_kk::bigint ORDER BY s.tanggal_survei::date DESC,
                          s.submitted_at DESC NULLS LAST, s.submission_pk DESC) AS rnk
FROM {{ accepted("bps_keluarga", "keluarga.csv") }};

-- name: accepted_kemensos
CREATE UNLOGGED TABLE scratch_merge.acc_kemensos AS
SELECT s.submission_pk, s.line_no, s.submitted_at, s.no_kk::bigint AS no_kk,
       s.tanggal_kunjungan::date AS tanggal_kunjungan, s.hasil, s.layak::smallint AS layak,
       row_number() OVER (PARTITION BY s.no_kk::bigint ORDER BY s.tanggal_kunjungan::date DESC,
                          s.submitted_at DESC NULLS LAST, s.submission_pk DESC) AS rnk
FROM {{ accepted("kemensos_groundcheck", "groundcheck.csv") }};

-- name: rank_conflicts
-- Same record in several submissions of one priority: the later collection date wins, then the
-- later submitted_at (submission_pk breaks exact ties deterministically). rnk is computed as each
-- accepted_* table is created (one sort, no rewrite of the table).
CREATE INDEX ON scratch_merge.acc_keluarga (no_kk) WHERE rnk = 1;
CREATE INDEX ON scratch_merge.acc_bps (no_kk) WHERE rnk = 1;
ANALYZE scratch_merge.acc_keluarga; ANALYZE scratch_merge.acc_anggota; ANALYZE scratch_merge.acc_bps; ANALYZE scratch_merge.acc_kemensos;

-- name: conflict_lost
-- planner: probe
-- Losers of same-priority conflicts, and pemda family updates that BPS overrides completely
-- (every attribute the pemda row sets is measured differently by BPS in this round).
INSERT INTO quality.rejection (round_seq, submission_pk, file_name, line_no, reason_code, field, key_value)
SELECT %(round_seq)s, submission_pk, 'keluarga.csv', line_no, 'CONFLICT_LOST', '', no_kk::text FROM scratch_merge.acc_keluarga WHERE rnk > 1
UNION ALL
SELECT %(round_seq)s, submission_pk, 'anggota.csv', line_no, 'CONFLICT_LOST', '', nik::text FROM scratch_merge.acc_anggota WHERE rnk > 1
UNION ALL
SELECT %(round_seq)s, submission_pk, 'keluarga.csv', line_no, 'CONFLICT_LOST', '', no_kk::text FROM scratch_merge.acc_bps WHERE rnk > 1
UNION ALL
SELECT %(round_seq)s, submission_pk, 'groundcheck.csv', line_no, 'CONFLICT_LOST', '', no_kk::text FROM scratch_merge.acc_kemensos WHERE rnk > 1
UNION ALL
SELECT %(round_seq)s, k.submission_pk, 'keluarga.csv', k.line_no, 'CONFLICT_LOST', '', k.no_kk::text
FROM scratch_merge.acc_keluarga k
JOIN scratch_merge.acc_bps b ON b.no_kk = k.no_kk AND b.rnk = 1
JOIN registry.family f ON f.no_kk = k.no_kk
WHERE k.rnk = 1 AND k.operasi = 'UBAH' AND k.kode_wilayah = f.kode_wilayah
  AND (k.alamat IS NULL OR k.alamat = f.alamat)
  AND num_nonnulls({% for a in family_attributes %}k.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}) > 0
  {% for a in family_attributes %}AND (k.{{ a.name }} IS NULL OR (b.{{ a.name }} IS NOT NULL AND b.{{ a.name }} <> k.{{ a.name }})){% if not loop.last %}
  {% endif %}{% endfor %}
ON CONFLICT DO NOTHING;

-- name: drop_conflict_losers
DELETE FROM scratch_merge.acc_keluarga k USING quality.rejection q
WHERE q.round_seq = %(round_seq)s AND q.reason_code = 'CONFLICT_LOST' AND q.submission_pk = k.submission_pk
  AND q.file_name = 'keluarga.csv' AND q.line_no = k.line_no;

-- name: family_new
-- planner: probe
-- The state each touched family should have after the round (BPS > pemda > current value).
CREATE UNLOGGED TABLE scratch_merge.fam_new AS
SELECT coalesce(k.no_kk, b.no_kk) AS no_kk, k.operasi, k.alasan_hapus,
       k.submission_pk AS pemda_submission, b.submission_pk AS bps_submission,
       f.no_kk IS NOT NULL AS existed,
       coalesce(k.kode_wilayah, f.kode_wilayah) AS kode_wilayah,
       CASE WHEN k.operasi = 'TAMBAH' THEN k.alamat ELSE coalesce(k.alamat, f.alamat) END AS alamat,
       coalesce(k.tanggal_pendataan, f.tanggal_pendataan) AS tanggal_pendataan,
       {% for a in family_attributes %}coalesce(b.{{ a.name }}, k.{{ a.name }}, CASE WHEN k.operasi IS DISTINCT FROM 'TAMBAH' THEN f.{{ a.name }} END) AS {{ a.name }}{% if not loop.last %},
       {% endif %}{% endfor %},
       coalesce(b.pengeluaran_per_kapita, CASE WHEN k.operasi IS DISTINCT FROM 'TAMBAH' THEN f.pengeluaran_per_kapita END) AS pengeluaran_per_kapita,
       coalesce(b.tanggal_survei, CASE WHEN k.operasi IS DISTINCT FROM 'TAMBAH' THEN f.tanggal_survei END) AS tanggal_survei
FROM (SELECT * FROM scratch_merge.acc_keluarga WHERE rnk = 1) k
FULL JOIN (SELECT * FROM scratch_merge.acc_bps WHERE rnk = 1) b ON b.no_kk = k.no_kk
LEFT JOIN registry.family f ON f.no_kk = coalesce(k.no_kk, b.no_kk);
CREATE INDEX ON scratch_merge.fam_new (no_kk);
ANALYZE scratch_merge.fam_new;

-- name: family_changes
-- planner: probe
-- History: one row per changed field of an existing family, with the source that set it (worked out
-- by a CREATE TABLE AS, which may get parallel workers; then inserted).
CREATE UNLOGGED TABLE scratch_merge.fam_changes AS
SELECT n.no_kk AS entity_key, v.field, v.old_value, v.new_value,
       CASE WHEN v.from_bps THEN n.bps_submission ELSE n.pemda_submission END AS submission_pk,
       CASE WHEN v.from_bps THEN 'bps' ELSE 'pemda' END AS source
FROM scratch_merge.fam_new n
JOIN registry.family f ON f.no_kk = n.no_kk
LEFT JOIN (SELECT * FROM scratch_merge.acc_bps WHERE rnk = 1) b ON b.no_kk = n.no_kk
CROSS JOIN LATERAL (VALUES
           ('kode_wilayah', f.kode_wilayah::text, n.kode_wilayah::text, false),
           ('alamat', f.alamat::text, n.alamat::text, false),
           ('tanggal_pendataan', f.tanggal_pendataan::text, n.tanggal_pendataan::text, false),
           {% for a in family_attributes %}('{{ a.name }}', f.{{ a.name }}::text, n.{{ a.name }}::text, b.{{ a.name }} IS NOT NULL){% if not loop.last %},
           {% endif %}{% endfor %},
           ('pengeluaran_per_kapita', f.pengeluaran_per_kapita::text, n.pengeluaran_per_kapita::text, true),
           ('tanggal_survei', f.tanggal_survei::text, n.tanggal_survei::text, true),
           ('is_open', f.is_open::text, 'true', false)
) AS v(field, old_value, new_value, from_bps)
WHERE n.operasi IS DISTINCT FROM 'HAPUS' AND v.old_value IS DISTINCT FROM v.new_value;

-- name: family_field_changes
INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
SELECT %(round_seq)s, 'F', entity_key, field, old_value, new_value, submission_pk, source
FROM scratch_merge.fam_changes;

-- name: family_insert_or_reopen
INSERT INTO registry.family (no_kk, kode_wilayah, alamat, tanggal_pendataan, {% for a in family_attributes %}{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, pengeluaran_per_kapita, tanggal_survei, created_round, created_submission, updated_round)
SELECT no_kk, kode_wilayah, alamat, tanggal_pendataan, {% for a in family_attributes %}{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, pengeluaran_per_kapita, tanggal_survei, %(round_seq)s, pemda_submission, %(round_seq)s
FROM scratch_merge.fam_new WHERE operasi = 'TAMBAH'
ON CONFLICT (no_kk) DO UPDATE SET

    kode_wilayah = EXCLUDED.kode_wilayah,
    alamat = EXCLUDED.alamat,
    tanggal_pendataan = EXCLUDED.tanggal_pendataan,
    {% for a in family_attributes %}{{ a.name }} = EXCLUDED.{{ a.name }}{% if not loop.last %},
    {% endif %}{% endfor %},
    pengeluaran_per_kapita = EXCLUDED.pengeluaran_per_kapita,
    tanggal_survei = EXCLUDED.tanggal_survei,
    is_open = true, closed_reason = NULL, closed_round = NULL, updated_round = EXCLUDED.updated_round;

-- name: family_update
-- planner: probe
UPDATE registry.family f SET

    kode_wilayah = n.kode_wilayah,
    alamat = n.alamat,
    tanggal_pendataan = n.tanggal_pendataan,
    {% for a in family_attributes %}{{ a.name }} = n.{{ a.name }}{% if not loop.last %},
    {% endif %}{% endfor %},
    pengeluaran_per_kapita = n.pengeluaran_per_kapita,
    tanggal_survei = n.tanggal_survei,
    updated_round = %(round_seq)s
FROM scratch_merge.fam_new n
WHERE f.no_kk = n.no_kk AND f.is_open AND coalesce(n.operasi, 'UBAH') = 'UBAH'
  AND (f.kode_wilayah IS DISTINCT FROM n.kode_wilayah OR f.alamat IS DISTINCT FROM n.alamat OR f.tanggal_pendataan IS DISTINCT FROM n.tanggal_pendataan OR {% for a in family_attributes %}f.{{ a.name }} IS DISTINCT FROM n.{{ a.name }}{% if not loop.last %} OR {% endif %}{% endfor %} OR f.pengeluaran_per_kapita IS DISTINCT FROM n.pengeluaran_per_kapita OR f.tanggal_survei IS DISTINCT FROM n.tanggal_survei);

-- name: bps_measurements
-- planner: probe
-- Every accepted BPS measurement that carries an expenditure is kept with its own survey date (the
-- family keeps only the latest pair, and a row without expenditure moves its date alone). One per
-- family per round (the round's winning row); a family the registry does not hold is not measured.
INSERT INTO registry.bps_measurement (no_kk, tanggal_survei, pengeluaran_per_kapita, round_seq, submission_pk)
SELECT b.no_kk, b.tanggal_survei, b.pengeluaran_per_kapita, %(round_seq)s, b.submission_pk
FROM scratch_merge.acc_bps b
JOIN registry.family f ON f.no_kk = b.no_kk
WHERE b.rnk = 1 AND b.pengeluaran_per_kapita IS NOT NULL
ON CONFLICT (no_kk, round_seq) DO NOTHING;

-- name: family_close
-- planner: probe
-- Families a region removes: closed with its reason; their remaining members leave with them.
WITH closed AS (
    UPDATE registry.family f
    SET is_open = false, closed_reason = n.alasan_hapus, closed_round = %(round_seq)s, updated_round = %(round_seq)s
    FROM scratch_merge.fam_new n
    WHERE f.no_kk = n.no_kk AND n.operasi = 'HAPUS' AND f.is_open
    RETURNING f.no_kk, n.pemda_submission
)
INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
SELECT %(round_seq)s, 'F', no_kk, 'is_open', 'true', 'false', pemda_submission, 'pemda' FROM closed;

-- name: family_groundcheck
-- planner: probe
-- Kemensos field checks are recorded on the family (latest visit wins) and feed program rules.
WITH checked AS (
    SELECT f.no_kk, f.groundcheck_tanggal AS old_tanggal, f.groundcheck_hasil AS old_hasil,
           f.groundcheck_layak AS old_layak, g.tanggal_kunjungan, g.hasil, g.layak, g.submission_pk
    FROM scratch_merge.acc_kemensos g JOIN registry.family f ON f.no_kk = g.no_kk
    WHERE g.rnk = 1 AND (f.groundcheck_tanggal IS NULL OR f.groundcheck_tanggal <= g.tanggal_kunjungan)
),
updated AS (
    UPDATE registry.family f
    SET groundcheck_tanggal = c.tanggal_kunjungan, groundcheck_hasil = c.hasil, groundcheck_layak = c.layak,
        groundcheck_submission = c.submission_pk, updated_round = %(round_seq)s
    FROM checked c WHERE f.no_kk = c.no_kk
    RETURNING f.no_kk
)
INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
SELECT %(round_seq)s, 'F', c.no_kk, v.field, v.old_value, v.new_value, c.submission_pk, 'kemensos'
FROM checked c
CROSS JOIN LATERAL (VALUES
    ('groundcheck_tanggal', c.old_tanggal::text, c.tanggal_kunjungan::text),
    ('groundcheck_hasil', c.old_hasil, c.hasil),
    ('groundcheck_layak', c.old_layak::text, c.layak::text)
) AS v(field, old_value, new_value)
WHERE v.old_value IS DISTINCT FROM v.new_value;

-- name: dukcapil_changes
-- Civil-registry rows that are new or changed since the snapshot the previous merge used: only these
-- can correct identity or record a death. They were found when each snapshot was compared with the
-- reference (ref.dukcapil_change), so this reads the changes, not the 289M-row reference: the NIKs
-- changed by the snapshots after the previous merge's, with their values as of this round's. The
-- first merge reads the whole reference; a round reusing the previous snapshot reads nothing.
CREATE UNLOGGED TABLE scratch_merge.dk_changed AS
SELECT d.nik, d.nama, d.jenis_kelamin, d.tanggal_lahir, d.status_hidup, d.tanggal_meninggal
FROM ref.dukcapil_as_of(%(snapshot_pk)s) d
WHERE %(previous_snapshot_pk)s::int IS NULL
UNION ALL
SELECT d.nik, d.nama, d.jenis_kelamin, d.tanggal_lahir, d.status_hidup, d.tanggal_meninggal
FROM (SELECT DISTINCT c.nik FROM ref.dukcapil_change c
      WHERE c.snapshot_pk > %(previous_snapshot_pk)s::int AND c.snapshot_pk <= %(snapshot_pk)s
        AND c.change IN ('NEW', 'CHANGED')) c
JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d ON d.nik = c.nik;

-- name: index_dukcapil_changes
CREATE INDEX ON scratch_merge.dk_changed (nik);
ANALYZE scratch_merge.dk_changed;

-- name: index_person_new
-- planner: probe
CREATE INDEX ON scratch_merge.per_new (nik);
ANALYZE scratch_merge.per_new;

-- name: person_field_changes
INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
SELECT %(round_seq)s, 'P', entity_key, field, old_value, new_value, submission_pk, source
FROM scratch_merge.per_changes;

-- name: person_insert_or_update
-- planner: probe
INSERT INTO registry.person (nik, nama, jenis_kelamin, tanggal_lahir, {% for a in member_attributes %}{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %},
                             created_round, created_submission, updated_round)
SELECT nik, nama, jenis_kelamin, tanggal_lahir, {% for a in member_attributes %}{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, %(round_seq)s, submission_pk, %(round_seq)s
FROM scratch_merge.per_new WHERE operasi <> 'HAPUS'
ON CONFLICT (nik) DO UPDATE SET
    nama = EXCLUDED.nama, jenis_kelamin = EXCLUDED.jenis_kelamin, tanggal_lahir = EXCLUDED.tanggal_lahir,
    {% for a in member_attributes %}{{ a.name }} = EXCLUDED.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %},
    is_open = true, closed_reason = NULL, closed_round = NULL, tanggal_meninggal = NULL,
    updated_round = EXCLUDED.updated_round
WHERE (registry.person.nama, registry.person.jenis_kelamin, registry.person.tanggal_lahir,
       {% for a in member_attributes %}registry.person.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %},
       registry.person.is_open)
      IS DISTINCT FROM
      (EXCLUDED.nama, EXCLUDED.jenis_kelamin, EXCLUDED.tanggal_lahir, {% for a in member_attributes %}EXCLUDED.{{ a.name }}{% if not loop.last %}, {% endif %}{% endfor %}, true);

-- name: person_close
-- planner: probe
WITH closed AS (
    UPDATE registry.person p
    SET is_open = false, closed_reason = n.alasan_hapus, closed_round = %(round_seq)s, updated_round = %(round_seq)s
    FROM scratch_merge.per_new n
    WHERE p.nik = n.nik AND n.operasi = 'HAPUS' AND p.is_open
    RETURNING p.nik, n.submission_pk
)
INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
SELECT %(round_seq)s, 'P', nik, 'is_open', 'true', 'false', submission_pk, 'pemda' FROM closed;

-- name: membership_moves
-- planner: probe
-- A change of family or relationship closes the open membership and opens a new one; a removal only
-- closes it. Families people leave are remembered to close them if left empty.
CREATE UNLOGGED TABLE scratch_merge.left_families AS
WITH ended AS (
    UPDATE registry.membership m
    SET valid_to_round = %(round_seq)s
    FROM scratch_merge.per_new n
    WHERE m.nik = n.nik AND m.valid_to_round IS NULL
      AND (n.operasi = 'HAPUS' OR m.no_kk <> n.target_kk OR m.hubungan_keluarga <> n.hubungan_keluarga)
    RETURNING m.nik, m.no_kk, m.hubungan_keluarga, n.submission_pk
),
logged AS (
    INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
    SELECT %(round_seq)s, 'M', e.nik, v.field, v.old_value, v.new_value, e.submission_pk, 'pemda'
    FROM ended e
    JOIN scratch_merge.per_new n ON n.nik = e.nik
    CROSS JOIN LATERAL (VALUES
        ('no_kk', e.no_kk::text, CASE WHEN n.operasi <> 'HAPUS' THEN n.target_kk::text END),
        ('hubungan_keluarga', e.hubungan_keluarga::text,
         CASE WHEN n.operasi <> 'HAPUS' THEN n.hubungan_keluarga::text END)
    ) AS v(field, old_value, new_value)
    WHERE v.old_value IS DISTINCT FROM v.new_value
)
SELECT DISTINCT no_kk FROM ended;

-- name: membership_open
-- planner: probe
INSERT INTO registry.membership (nik, no_kk, hubungan_keluarga, valid_from_round, submission_pk, source)
SELECT n.nik, n.target_kk, n.hubungan_keluarga, %(round_seq)s, n.submission_pk, 'pemda'
FROM scratch_merge.per_new n
WHERE n.operasi <> 'HAPUS'
  AND NOT EXISTS (SELECT 1 FROM registry.membership m WHERE m.nik = n.nik AND m.valid_to_round IS NULL);

-- name: dukcapil_deaths
-- planner: probe
-- Dukcapil is the authority on death: open persons it records as deceased are closed, reported by a
-- region or not.
CREATE UNLOGGED TABLE scratch_merge.deceased AS
WITH closed AS (
    UPDATE registry.person p
    SET is_open = false, closed_reason = 'MENINGGAL', tanggal_meninggal = d.tanggal_meninggal,
        closed_round = %(round_seq)s, updated_round = %(round_seq)s
    FROM scratch_merge.dk_changed d
    WHERE d.nik = p.nik AND d.status_hidup = 'MENINGGAL' AND p.is_open
    RETURNING p.nik
),
logged AS (
    INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
    SELECT %(round_seq)s, 'P', nik, 'is_open', 'true', 'false', NULL, 'dukcapil' FROM closed
)
SELECT nik FROM closed;

-- name: dukcapil_memberships_end
-- planner: probe
INSERT INTO scratch_merge.left_families
SELECT DISTINCT m.no_kk FROM registry.membership m JOIN scratch_merge.deceased d ON d.nik = m.nik WHERE m.valid_to_round IS NULL;

-- name: dukcapil_memberships_close
-- planner: probe
UPDATE registry.membership m SET valid_to_round = %(round_seq)s
FROM scratch_merge.deceased d WHERE d.nik = m.nik AND m.valid_to_round IS NULL;

-- name: dukcapil_head_succession
-- planner: probe
-- A head whom only Dukcapil reports dead (the region named no successor) would leave an open family
-- headless. The spouse, else the oldest remaining member, becomes head: the rule a region applies
-- when it reports the death itself. Recorded as a 'system' change so the region can confirm or
-- correct it in the next round.
CREATE UNLOGGED TABLE scratch_merge.head_successor AS
WITH headless AS (
    SELECT DISTINCT m.no_kk FROM registry.membership m JOIN scratch_merge.deceased d ON d.nik = m.nik
    WHERE m.valid_to_round = %(round_seq)s AND m.hubungan_keluarga = 1
      AND NOT EXISTS (SELECT 1 FROM registry.membership o
                      WHERE o.no_kk = m.no_kk AND o.valid_to_round IS NULL AND o.hubungan_keluarga = 1)
)
SELECT DISTINCT ON (m.no_kk) m.nik, m.no_kk, m.hubungan_keluarga AS old_hubungan, m.valid_from_round
FROM headless h
JOIN registry.membership m ON m.no_kk = h.no_kk AND m.valid_to_round IS NULL
JOIN registry.person p ON p.nik = m.nik
ORDER BY m.no_kk, (m.hubungan_keluarga = 2) DESC, p.tanggal_lahir, m.nik;

-- name: dukcapil_head_succession_apply
-- planner: probe
WITH ended AS (
    UPDATE registry.membership m SET valid_to_round = %(round_seq)s
    FROM scratch_merge.head_successor s
    WHERE m.nik = s.nik AND m.valid_from_round = s.valid_from_round AND s.valid_from_round < %(round_seq)s
      AND m.valid_to_round IS NULL
    RETURNING m.nik, m.no_kk
),
reopened AS (
    INSERT INTO registry.membership (nik, no_kk, hubungan_keluarga, valid_from_round, submission_pk, source)
    SELECT nik, no_kk, 1, %(round_seq)s, NULL, 'system' FROM ended
),
-- a membership opened this round is corrected in place (one row per person and round). Each row is
-- found by its key (nik, valid_from_round): a filter on valid_from_round alone is priced by the
-- statistics from before this round, which hold none of its rows, and was planned as a scan
in_place AS (
    UPDATE registry.membership m SET hubungan_keluarga = 1, source = 'system'
    FROM scratch_merge.head_successor s
    WHERE m.nik = s.nik AND m.valid_from_round = s.valid_from_round AND s.valid_from_round = %(round_seq)s
      AND m.valid_to_round IS NULL
)
INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
SELECT %(round_seq)s, 'M', nik, 'hubungan_keluarga', old_hubungan::text, '1', NULL, 'system' FROM scratch_merge.head_successor;

-- name: dukcapil_identity
-- planner: probe
-- Identity fields that disagree with Dukcapil are corrected to its values (persons no row touched
-- this round; touched persons already took Dukcapil's values in person_new).
WITH differing AS (
    SELECT p.nik, p.nama AS old_nama, p.jenis_kelamin AS old_jk, p.tanggal_lahir AS old_tgl,
           d.nama, d.jenis_kelamin, d.tanggal_lahir
    FROM scratch_merge.dk_changed d JOIN registry.person p ON p.nik = d.nik
    WHERE p.is_open AND d.status_hidup = 'HIDUP'
      AND NOT EXISTS (SELECT 1 FROM scratch_merge.per_new n WHERE n.nik = d.nik)
      AND (p.nama, p.jenis_kelamin, p.tanggal_lahir) IS DISTINCT FROM (d.nama, d.jenis_kelamin, d.tanggal_lahir)
),
updated AS (
    UPDATE registry.person p
    SET nama = x.nama, jenis_kelamin = x.jenis_kelamin, tanggal_lahir = x.tanggal_lahir, updated_round = %(round_seq)s
    FROM differing x WHERE p.nik = x.nik
    RETURNING p.nik
)
INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
SELECT %(round_seq)s, 'P', x.nik, v.field, v.old_value, v.new_value, NULL, 'dukcapil'
FROM differing x
CROSS JOIN LATERAL (VALUES
    ('nama', x.old_nama, x.nama),
    ('jenis_kelamin', x.old_jk::text, x.jenis_kelamin::text),
    ('tanggal_lahir', x.old_tgl::text, x.tanggal_lahir::text)
) AS v(field, old_value, new_value)
WHERE v.old_value IS DISTINCT FROM v.new_value;

-- name: removed_families_release_members
-- planner: probe
-- Members still in a family a region removed leave with it (their person record is closed too).
WITH released AS (
    UPDATE registry.membership m SET valid_to_round = %(round_seq)s
    FROM scratch_merge.fam_new n
    WHERE n.operasi = 'HAPUS' AND m.no_kk = n.no_kk AND m.valid_to_round IS NULL
    RETURNING m.nik, n.pemda_submission
),
closed AS (
    UPDATE registry.person p
    SET is_open = false, closed_reason = 'KELUARGA_DIHAPUS', closed_round = %(round_seq)s, updated_round = %(round_seq)s
    FROM released r WHERE p.nik = r.nik AND p.is_open
    RETURNING p.nik, r.pemda_submission
)
INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
SELECT %(round_seq)s, 'P', nik, 'is_open', 'true', 'false', pemda_submission, 'system' FROM closed;

-- name: close_empty_families
-- planner: probe
-- A family left with no members is closed.
WITH emptied AS (
    UPDATE registry.family f
    SET is_open = false, closed_reason = 'TANPA_ANGGOTA', closed_round = %(round_seq)s, updated_round = %(round_seq)s
    WHERE f.is_open AND f.no_kk IN (SELECT no_kk FROM scratch_merge.left_families)
      AND NOT EXISTS (SELECT 1 FROM registry.membership m WHERE m.no_kk = f.no_kk AND m.valid_to_round IS NULL)
    RETURNING f.no_kk
)
INSERT INTO registry.field_change (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)
SELECT %(round_seq)s, 'F', no_kk, 'is_open', 'true', 'false', NULL, 'system' FROM emptied;

-- name: touched_families
-- What this round touched, for the invariant checks and the change counts: they then read the
-- round's keys by index instead of scanning the registry (the merge grows with the round).
CREATE UNLOGGED TABLE scratch_merge.touched_family AS
SELECT no_kk FROM scratch_merge.fam_new
-- families a person joined or changed relationship in (an attribute update inside the same family
-- cannot change who heads it, so it does not make the family "touched")
UNION SELECT target_kk FROM scratch_merge.per_new WHERE target_kk IS NOT NULL
    AND (NOT was_open OR current_kk IS DISTINCT FROM target_kk OR current_hubungan IS DISTINCT FROM hubungan_keluarga)
UNION SELECT no_kk FROM scratch_merge.left_families
UNION SELECT no_kk FROM scratch_merge.head_successor
UNION SELECT entity_key FROM registry.field_change WHERE round_seq = %(round_seq)s AND entity = 'F';

-- name: touched_persons
CREATE UNLOGGED TABLE scratch_merge.touched_person AS
SELECT nik FROM scratch_merge.per_new
UNION SELECT nik FROM scratch_merge.deceased
UNION SELECT entity_key FROM registry.field_change WHERE round_seq = %(round_seq)s AND entity IN ('P', 'M');

-- name: index_touched
CREATE UNIQUE INDEX ON scratch_merge.touched_family (no_kk);
CREATE UNIQUE INDEX ON scratch_merge.touched_person (nik);
ANALYZE scratch_merge.touched_family;
ANALYZE scratch_merge.touched_person;

-- The next candidate version re-scores what the rounds since its predecessor touched. Before any
-- live version there is no predecessor (the next candidate is built whole): a first national load
-- would write every key here for nothing.
-- name: record_touched
INSERT INTO registry.round_touched (round_seq, entity, key)
SELECT %(round_seq)s, 'F', no_kk FROM scratch_merge.touched_family
WHERE EXISTS (SELECT 1 FROM publish.version WHERE status <> 'DISCARDED')
UNION ALL SELECT %(round_seq)s, 'P', nik FROM scratch_merge.touched_person
WHERE EXISTS (SELECT 1 FROM publish.version WHERE status <> 'DISCARDED')
ON CONFLICT DO NOTHING;

-- name: touched_recorded
UPDATE ingest.round SET touched_recorded = true WHERE round_seq = %(round_seq)s;

-- name: index_round_changes
SELECT registry.index_round_changes(%(round_seq)s::smallint);
