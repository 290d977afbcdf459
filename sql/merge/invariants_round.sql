-- The registry invariants for what one merge touched (scratch_merge.touched_family and
-- touched_person, built at the end of merge_round.sql in the same transaction): index lookups per
-- touched key, so the check grows with the round, not with the registry. Any row returned is a
-- violation. invariants.sql checks the whole registry.

-- name: open_family_without_exactly_one_head
-- planner: probe
-- the touched families' open memberships, grouped: for a small round, index probes per family (the
-- probe profile); for one touching most of the registry (a first load), one hash join and aggregate
-- that PostgreSQL may run in parallel (a count per family in a LATERAL subquery probed each family's
-- membership partitions one by one: 5.2 s for a 1M-person first load, against 1.2 s). The open
-- family is a semi-join (its key is unique: the same rows): joined, a quarterly's plan walked every
-- family in key order to feed the grouping, 0.7 of the check's 1.8 s at 1M.
SELECT t.no_kk
FROM scratch_merge.touched_family t
LEFT JOIN registry.membership m ON m.no_kk = t.no_kk AND m.valid_to_round IS NULL
WHERE EXISTS (SELECT 1 FROM registry.family f WHERE f.no_kk = t.no_kk AND f.is_open)
GROUP BY t.no_kk
HAVING count(*) FILTER (WHERE m.hubungan_keluarga = 1) <> 1
LIMIT 20;

-- name: open_membership_of_closed_family
-- planner: probe
(SELECT m.nik FROM scratch_merge.touched_person t
 JOIN registry.membership m ON m.nik = t.nik AND m.valid_to_round IS NULL
 LEFT JOIN registry.family f ON f.no_kk = m.no_kk
 WHERE f.no_kk IS NULL OR NOT f.is_open
 LIMIT 20)
UNION ALL
(SELECT m.nik FROM scratch_merge.touched_family t
 JOIN registry.family f ON f.no_kk = t.no_kk AND NOT f.is_open
 JOIN registry.membership m ON m.no_kk = f.no_kk AND m.valid_to_round IS NULL
 LIMIT 20);

-- name: open_membership_of_closed_person
-- planner: probe
SELECT m.nik FROM scratch_merge.touched_person t
JOIN registry.person p ON p.nik = t.nik AND NOT p.is_open
JOIN registry.membership m ON m.nik = p.nik AND m.valid_to_round IS NULL
LIMIT 20;

-- name: open_person_deceased_per_dukcapil
-- planner: probe
-- persons this round touched, and everyone whose death arrived with this snapshot's changes
(SELECT p.nik FROM scratch_merge.touched_person t
 JOIN registry.person p ON p.nik = t.nik AND p.is_open
 JOIN ref.dukcapil_as_of(%(snapshot_pk)s) d ON d.nik = p.nik AND d.status_hidup = 'MENINGGAL'
 LIMIT 20)
UNION ALL
(SELECT p.nik FROM scratch_merge.dk_changed c
 JOIN registry.person p ON p.nik = c.nik AND p.is_open
 WHERE c.status_hidup = 'MENINGGAL'
 LIMIT 20);
