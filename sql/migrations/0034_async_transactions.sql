-- Asynchronous DCI transactions of the registry API (issue 24): `/registry/search`, `/registry/subscribe`,
-- `/registry/unsubscribe` and `/registry/txn/status` are answered with an ACK, then their on-* envelope
-- is POSTed to the client's callback (header.sender_uri, checked by the callback rules); `txn/status`
-- reads this table. One row per transaction, keyed by the correlation id the ACK gave.
--
-- No personal data in the clear: a search's items (an idtype-value query holds a NIK) are kept only
-- until the answer is delivered or given up, encrypted under a key the API derives from its disclosure
-- key; `answer` is the on-* message without records or subscription secrets (the records are
-- recomputed from the pinned, immutable version when a delivery is retried, each time logged as a
-- disclosure). The API role may read, add and update rows, never delete them.
CREATE TABLE api.txn (
    correlation_id uuid PRIMARY KEY,
    client_id text NOT NULL REFERENCES api.client (client_id),
    action text NOT NULL CHECK (action IN ('search', 'subscribe', 'unsubscribe', 'txn-status')),
    transaction_id text NOT NULL,
    reference_ids text[] NOT NULL DEFAULT '{}',
    received_at timestamptz NOT NULL DEFAULT now(),
    version integer,
    sealed_request bytea,
    callback_url text NOT NULL,
    status text NOT NULL DEFAULT 'pdng' CHECK (status IN ('pdng', 'succ', 'rjct')),
    answer jsonb,
    processed_at timestamptz,
    delivery text NOT NULL DEFAULT 'pending' CHECK (delivery IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    delivered_at timestamptz
);
CREATE INDEX txn_of_client ON api.txn (client_id, transaction_id);
CREATE INDEX txn_due ON api.txn (next_attempt_at) WHERE delivery = 'pending';
GRANT SELECT, INSERT, UPDATE ON api.txn TO dtsen_api;
