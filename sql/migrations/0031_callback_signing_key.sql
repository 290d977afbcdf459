-- Subscribers' callback secrets are derived from DTSEN_CALLBACK_SIGNING_KEY, no longer from the
-- disclosure log's key (issue 24, item 9), so the Airflow workers that sign callbacks need not hold
-- the disclosure key. A subscription says which key its secret came from: the ones that exist now were
-- derived from the disclosure key and keep it until their client subscribes again (same program and
-- URL), which moves them to the signing key (dtsen.api.subscriptions).
ALTER TABLE api.subscription ADD COLUMN signed_with text NOT NULL DEFAULT 'disclosure-key'
    CHECK (signed_with IN ('disclosure-key', 'callback-key'));
ALTER TABLE api.subscription ALTER COLUMN signed_with SET DEFAULT 'callback-key';
GRANT UPDATE (signed_with) ON api.subscription TO dtsen_api;
