-- The registry API for program teams (docs/registry-api.md): its clients, their bearer tokens, their
-- subscriptions to published versions, and the disclosure log of every response that carried
-- personal data.
CREATE SCHEMA IF NOT EXISTS api;

-- A program team's system. The secret is kept only as a scrypt hash; programs and fields are its scope.
CREATE TABLE api.client (
    client_id        text PRIMARY KEY CHECK (client_id ~ '^[a-z0-9][a-z0-9_.-]{2,63}$'),
    name             text NOT NULL,
    secret_hash      text NOT NULL,
    programs         text[] NOT NULL CHECK (cardinality(programs) > 0),
    fields           text[] NOT NULL CHECK (cardinality(fields) > 0),
    rate_per_minute  integer NOT NULL DEFAULT 600 CHECK (rate_per_minute > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    rotated_at       timestamptz,
    revoked_at       timestamptz
);

-- Bearer tokens, kept as sha256: a stolen table gives no usable token. Revoking the client ends them.
CREATE TABLE api.token (
    token_hash  bytea PRIMARY KEY,
    client_id   text NOT NULL REFERENCES api.client,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX token_client ON api.token (client_id, expires_at);

-- "Tell me when a version is published": one callback per program the client may see.
CREATE TABLE api.subscription (
    code          text PRIMARY KEY,
    client_id     text NOT NULL REFERENCES api.client,
    program       text NOT NULL,
    callback_url  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    cancelled_at  timestamptz
);
CREATE INDEX subscription_program ON api.subscription (program) WHERE cancelled_at IS NULL;

-- Every response that carried personal data, recorded before it left; append-only. Persons are
-- kept as keyed hashes (HMAC of the NIK under the server's disclosure key, 16 bytes), so the log is
-- no second copy of the registry; a file's persons are its (immutable) version's recipients.
CREATE TABLE api.disclosure (
    disclosure_pk  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id      text NOT NULL REFERENCES api.client,
    at             timestamptz NOT NULL DEFAULT now(),
    kind           text NOT NULL CHECK (kind IN ('search', 'file')),
    request        jsonb NOT NULL,
    version        integer NOT NULL,
    program        text NOT NULL,
    records        integer NOT NULL CHECK (records >= 0),
    person_keys    bytea[] NOT NULL DEFAULT '{}',
    file_sha256    text
);
CREATE INDEX disclosure_client_at ON api.disclosure (client_id, at);
CREATE INDEX disclosure_person ON api.disclosure USING gin (person_keys);

CREATE FUNCTION api.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'api.disclosure is append-only: a disclosure, once recorded, stays';
END $$;
CREATE TRIGGER disclosure_append_only BEFORE UPDATE OR DELETE ON api.disclosure
    FOR EACH ROW EXECUTE FUNCTION api.refuse_change();
CREATE TRIGGER disclosure_no_truncate BEFORE TRUNCATE ON api.disclosure
    FOR EACH STATEMENT EXECUTE FUNCTION api.refuse_change();
