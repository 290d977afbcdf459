-- The merge's scratch tables (schema scratch_merge, built by merge_round.sql and read by the
-- invariant checks and the change counts) are dropped before the merge commits: no other session
-- ever sees them, and the next merge creates them afresh.

-- name: drop_scratch
DROP TABLE scratch_merge.acc_keluarga, scratch_merge.acc_anggota, scratch_merge.acc_bps,
           scratch_merge.acc_kemensos, scratch_merge.fam_new, scratch_merge.fam_changes, scratch_merge.dk_changed,
           scratch_merge.per_new, scratch_merge.per_changes, scratch_merge.left_families, scratch_merge.deceased,
           scratch_merge.head_successor, scratch_merge.touched_family, scratch_merge.touched_person;
