-- A round's field_change partition gets its (entity, entity_key, field) index after the merge has
-- written it, in the merge's own transaction, instead of from its creation: maintaining the index
-- row by row during a bulk insert of millions of changes costs more than building it once. Nothing
-- in the merge reads the round's own changes by key (only whole-partition scans).
CREATE OR REPLACE FUNCTION registry.ensure_round_partitions(p_round_seq smallint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS registry.%I PARTITION OF registry.field_change FOR VALUES IN (%s)',
                   'field_change_r' || p_round_seq, p_round_seq);
END $$;

CREATE FUNCTION registry.index_round_changes(p_round_seq smallint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'field_change_r' || p_round_seq;
BEGIN
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON registry.%I (entity, entity_key, field)',
                   part || '_key_idx', part);
END $$;
