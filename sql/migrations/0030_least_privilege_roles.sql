-- Least privilege (issue 24, item 2): each component reaches the warehouse through its own role, and
-- only migrations run as the owner (whoever runs `dtsen db migrate`; it owns every object here).
--   dtsen_round    the round's steps: reads and writes the round's schemas, creates and drops its
--                  partitions and refreshes statistics only through the owner's functions below;
--                  reads the API's live subscriptions; nothing else of the api schema.
--   dtsen_api      the registry API: reads the published versions it serves and its clients, keeps
--                  its tokens and subscriptions, and may only append to the disclosure log.
--   dtsen_cockpit  the data-ops cockpit: reads the summaries it shows, nothing else.
-- They are group roles without LOGIN: a deployment's logins are members of them, made by `dtsen db
-- migrate` from the URLs the components are configured with (dtsen.warehouse.roles). None of them is a
-- superuser (who could switch triggers off, drop the log or run programs with COPY ... TO PROGRAM),
-- owns anything, or may create schemas, databases or roles.
--
-- Roles belong to the server, not to the database: several warehouses on one server (the tests make
-- many) share them, so a role another database made already (or is making now) is taken as it is, and
-- refused if it has more power than it should. Grants and default privileges are per database.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['dtsen_round', 'dtsen_api', 'dtsen_cockpit'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
                               'NOBYPASSRLS INHERIT', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database's migration made it at the same moment
            END;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r
                   AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)) THEN
            RAISE EXCEPTION 'role % exists with superuser, createdb, createrole, replication or bypassrls: '
                            'a component role must have none of them', r;
        END IF;
        IF pg_has_role(r, current_user, 'MEMBER') THEN
            RAISE EXCEPTION 'role % is a member of the owner %: it would own the warehouse', r, current_user;
        END IF;
    END LOOP;
END $$;

-- Nobody but the owner creates objects in the default schema either (PostgreSQL 15's default; older
-- servers granted it to everyone).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The owner's functions that do what only an owner may (create or drop a partition, build an index,
-- refresh statistics, replace a view), each for the round only, each with a fixed search_path.
ALTER FUNCTION staging.ensure_round_partitions(smallint) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION quality.ensure_round_partitions(smallint) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION registry.ensure_round_partitions(smallint) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION registry.index_round_changes(smallint) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION staging.ensure_snapshot_partitions(integer) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- ANALYZE needs the owner on PostgreSQL 15 (a non-owner's is skipped with a warning, and the plans of
-- the next statements go wrong): the round asks for it here, for tables of its own schemas only.
CREATE FUNCTION meta.analyze(VARIADIC p_tables regclass[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regclass;
BEGIN
    FOREACH t IN ARRAY p_tables LOOP
        IF (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = t)
           NOT IN ('ref', 'ingest', 'staging', 'quality', 'registry', 'publish') THEN
            RAISE EXCEPTION 'meta.analyze: % is not a table of the round''s schemas', t;
        END IF;
        EXECUTE format('ANALYZE %s', t);
    END LOOP;
END $$;

-- Retention (dtsen.ingest.retention): a round's or a snapshot's staging partitions, dropped by name.
CREATE FUNCTION staging.drop_round_partitions(p_round_seq smallint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['pemda_keluarga', 'pemda_anggota', 'bps_keluarga', 'kemensos_groundcheck'] LOOP
        EXECUTE format('DROP TABLE IF EXISTS staging.%I', t || '_r' || p_round_seq);
    END LOOP;
END $$;

CREATE FUNCTION staging.drop_snapshot_partitions(p_snapshot_pk integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS staging.%I', 'dukcapil_penduduk_s' || p_snapshot_pk);
END $$;

-- Publication: one view per program for its team (every published version's recipients).
CREATE FUNCTION publish.ensure_program_view(p_program text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_program !~ '^[a-z][a-z0-9_]{0,40}$' THEN
        RAISE EXCEPTION 'publish.ensure_program_view: % is not a program id', p_program;
    END IF;
    EXECUTE format('CREATE OR REPLACE VIEW publish.%I AS SELECT version, nik, no_kk, kode_wilayah, desil, prioritas '
                   'FROM publish.recipient_published WHERE program = %L', 'recipient_' || p_program, p_program);
END $$;

DO $$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'staging.ensure_round_partitions(smallint)', 'quality.ensure_round_partitions(smallint)',
        'registry.ensure_round_partitions(smallint)', 'registry.index_round_changes(smallint)',
        'staging.ensure_snapshot_partitions(integer)', 'meta.analyze(regclass[])',
        'staging.drop_round_partitions(smallint)', 'staging.drop_snapshot_partitions(integer)',
        'publish.ensure_program_view(text)']::regprocedure[] LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO dtsen_round', f);
    END LOOP;
END $$;

-- The round.
GRANT USAGE ON SCHEMA meta, ref, ingest, staging, quality, registry, publish, api TO dtsen_round;
GRANT SELECT ON ALL TABLES IN SCHEMA meta, ref TO dtsen_round;
GRANT INSERT, UPDATE, DELETE ON ref.dukcapil, ref.dukcapil_change TO dtsen_round;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ingest, staging, quality, registry, publish TO dtsen_round;
REVOKE INSERT, UPDATE, DELETE ON quality.reason_code FROM dtsen_round;  -- seeded by `dtsen db migrate`
REVOKE UPDATE, DELETE ON publish.approval_decision FROM dtsen_round;  -- a decision, once recorded, stays
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ingest, staging, quality, registry, publish TO dtsen_round;
-- the notify step reads the live subscriptions and their clients (never a client's secret hash)
GRANT SELECT ON api.subscription TO dtsen_round;
GRANT SELECT (client_id, name, programs, fields, rate_per_minute, created_at, rotated_at, revoked_at)
    ON api.client TO dtsen_round;

-- The registry API.
GRANT USAGE ON SCHEMA publish, api TO dtsen_api;
GRANT SELECT ON publish.version, publish.current_version, publish.recipient_span, publish.anggota_span,
    publish.keluarga_span TO dtsen_api;
GRANT SELECT ON api.client TO dtsen_api;
GRANT SELECT, INSERT, DELETE ON api.token TO dtsen_api;
GRANT SELECT, INSERT ON api.subscription TO dtsen_api;
GRANT UPDATE (cancelled_at) ON api.subscription TO dtsen_api;
GRANT INSERT ON api.disclosure TO dtsen_api;  -- append only: no SELECT, UPDATE, DELETE or TRUNCATE

-- The cockpit (sql/cockpit/cockpit.sql, and the drift of sql/publish/audit.sql).
GRANT USAGE ON SCHEMA ingest, publish, ref TO dtsen_cockpit;
GRANT SELECT ON ingest.round, ingest.submission, ingest.refused_entry, publish.version,
    publish.current_version, publish.approval_decision, publish.recipient_count, publish.recipient_drift,
    publish.recipient_span TO dtsen_cockpit;
GRANT SELECT ON ref.provinsi, ref.kabupaten, ref.kecamatan, ref.desa TO dtsen_cockpit;  -- not ref.dukcapil

-- Tables and sequences later migrations (and the partitions the functions above) create: the round
-- reads and writes those of its schemas. What the API and the cockpit read is granted by name, by the
-- migration that makes it.
ALTER DEFAULT PRIVILEGES IN SCHEMA ingest, staging, quality, registry, publish
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO dtsen_round;
ALTER DEFAULT PRIVILEGES IN SCHEMA ingest, staging, quality, registry, publish
    GRANT USAGE, SELECT ON SEQUENCES TO dtsen_round;
ALTER DEFAULT PRIVILEGES IN SCHEMA meta, ref GRANT SELECT ON TABLES TO dtsen_round;
