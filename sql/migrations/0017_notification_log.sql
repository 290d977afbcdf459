-- Every notification delivered (email or webhook), so a retried notify task sends only what did not
-- go out the first time. Targets are addresses and URLs of agencies, never personal data.
CREATE TABLE publish.notification (
    notification_pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic           text NOT NULL,      -- e.g. version:3:program:pbi_jk, round:2026-Q1:region:3674
    channel         text NOT NULL CHECK (channel IN ('email', 'webhook')),
    target          text NOT NULL,
    status          text NOT NULL,      -- SENT, or the HTTP status of a webhook
    attempts        integer NOT NULL DEFAULT 1,
    sent_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, channel, target)
);
