-- Signed envelopes (issue 24): a registry API client may register the Ed25519 public key it signs its
-- DCI envelopes with, the base64 of the raw 32 bytes (44 characters, the last of the 43 carrying two
-- zero bits, then one '='); `dtsen api-client create --public-key` and `set-key` check it is a key
-- before writing it. With a key, the API refuses the client's unsigned or badly signed requests.
-- The API role's SELECT on api.client (migration 0030, on the whole table) covers the column; the
-- round's column grants do not, and need not.
ALTER TABLE api.client ADD COLUMN signing_public_key text
    CONSTRAINT client_signing_public_key_is_base64_of_32_bytes
    CHECK (signing_public_key ~ '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$');
