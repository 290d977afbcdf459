-- Invariants of the registry (checked after every merge; any row returned is a violation).
-- Used for the whole registry (round_seq NULL; e.g. tests and audits); a merge checks what it touched
-- with invariants_round.sql. Scope: with %(round_seq)s set, only families and persons touched in that round (so the check
-- grows with the round, not the registry); with NULL, the whole registry.

-- name: open_family_without_exactly_one_head
SELECT f.no_kk, count(m.nik) FILTER (WHERE m.hubungan_keluarga = 1) AS heads
FROM registry.family f
LEFT JOIN registry.membership m ON m.no_kk = f.no_kk AND m.valid_to_round IS NULL
WHERE f.is_open
  AND (%(round_seq)s::smallint IS NULL OR f.updated_round = %(round_seq)s
       OR f.no_kk IN (SELECT no_kk FROM registry.membership WHERE valid_from_round = %(round_seq)s
                      OR valid_to_round = %(round_seq)s))
GROUP BY f.no_kk
HAVING count(m.nik) FILTER (WHERE m.hubungan_keluarga = 1) <> 1
LIMIT 20;

-- name: open_membership_of_closed_family
SELECT m.nik, m.no_kk FROM registry.membership m
LEFT JOIN registry.family f ON f.no_kk = m.no_kk
WHERE m.valid_to_round IS NULL AND (f.no_kk IS NULL OR NOT f.is_open)
  AND (%(round_seq)s::smallint IS NULL OR m.valid_from_round = %(round_seq)s OR f.updated_round = %(round_seq)s)
LIMIT 20;

-- name: open_membership_of_closed_person
SELECT m.nik FROM registry.membership m
JOIN registry.person p ON p.nik = m.nik
WHERE m.valid_to_round IS NULL AND NOT p.is_open
  AND (%(round_seq)s::smallint IS NULL OR p.updated_round = %(round_seq)s)
LIMIT 20;

-- name: open_person_deceased_per_dukcapil
SELECT p.nik FROM registry.person p
JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d ON d.nik = p.nik AND d.status_hidup = 'MENINGGAL'
WHERE p.is_open
LIMIT 20;
