-- What one merge changed, counted from its touched_* tables and its field_change partition (inside
-- the merge's transaction). Parameter: r (round_seq).
-- Every person or family that opens or closes is counted under exactly one line, so the open
-- registry adds up: persons before + added + re-added - deceased - closed (other reasons) = after,
-- families before + added + re-added - closed = after. A re-added row is one closed in an earlier
-- round and opened again (its created_round is that earlier round); one added and closed within
-- the same round counts under both lines.

-- name: change_counts
-- planner: probe
SELECT label, count FROM (
    SELECT 'families added' AS label, count(*) FROM scratch_merge.touched_family t
        JOIN registry.family f ON f.no_kk = t.no_kk WHERE f.created_round = %(r)s
    UNION ALL SELECT 'families closed', count(*) FROM scratch_merge.touched_family t
        JOIN registry.family f ON f.no_kk = t.no_kk WHERE f.closed_round = %(r)s
    UNION ALL SELECT 'families re-added', count(*) FROM registry.field_change
        WHERE round_seq = %(r)s AND entity = 'F' AND field = 'is_open' AND old_value = 'false' AND new_value = 'true'
    UNION ALL SELECT 'families updated', count(DISTINCT entity_key) FROM registry.field_change
        WHERE round_seq = %(r)s AND entity = 'F' AND field <> 'is_open'
    UNION ALL SELECT 'persons added', count(*) FROM scratch_merge.touched_person t
        JOIN registry.person p ON p.nik = t.nik WHERE p.created_round = %(r)s
    UNION ALL SELECT 'persons re-added', count(*) FROM registry.field_change
        WHERE round_seq = %(r)s AND entity = 'P' AND field = 'is_open' AND old_value = 'false' AND new_value = 'true'
    UNION ALL SELECT 'persons deceased', count(*) FROM scratch_merge.touched_person t
        JOIN registry.person p ON p.nik = t.nik WHERE p.closed_round = %(r)s AND p.closed_reason = 'MENINGGAL'
    UNION ALL SELECT 'persons closed (other reasons)', count(*) FROM scratch_merge.touched_person t
        JOIN registry.person p ON p.nik = t.nik WHERE p.closed_round = %(r)s
         AND p.closed_reason IS DISTINCT FROM 'MENINGGAL'
    UNION ALL SELECT 'persons updated', count(DISTINCT entity_key) FROM registry.field_change
        WHERE round_seq = %(r)s AND entity = 'P' AND field <> 'is_open'
    UNION ALL SELECT 'identity corrected by Dukcapil', count(DISTINCT entity_key) FROM registry.field_change
        WHERE round_seq = %(r)s AND entity = 'P' AND source = 'dukcapil' AND field <> 'is_open'
    UNION ALL SELECT 'heads succeeded (death by Dukcapil)', count(*) FROM registry.field_change
        WHERE round_seq = %(r)s AND entity = 'M' AND field = 'hubungan_keluarga' AND source = 'system'
    UNION ALL SELECT 'persons moved family', count(*) FROM registry.field_change
        WHERE round_seq = %(r)s AND entity = 'M' AND field = 'no_kk' AND new_value IS NOT NULL
    UNION ALL SELECT 'field changes recorded', count(*) FROM registry.field_change WHERE round_seq = %(r)s
) t
