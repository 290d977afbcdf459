-- The merge's scratch tables (schema scratch_merge, built by person_scratch.sql and merge_round.sql
-- and read by the invariant checks and the change counts) are dropped before the merge commits, and
-- the next merge creates them afresh. The per-person ones may have been built by sessions of their
-- own, which commit them: a merge that died after them left them behind, so a merge starts by
-- dropping what is left (`leftovers`, a fragment: any non-empty text).

-- name: drop_scratch
DROP TABLE {% if leftovers %}IF EXISTS {% endif %}scratch_merge.acc_keluarga, scratch_merge.acc_anggota, scratch_merge.acc_bps,
           scratch_merge.acc_kemensos, scratch_merge.fam_new, scratch_merge.fam_changes, scratch_merge.dk_changed,
           scratch_merge.per_new, scratch_merge.per_changes, scratch_merge.left_families, scratch_merge.deceased,
           scratch_merge.head_successor, scratch_merge.touched_family, scratch_merge.touched_person;
