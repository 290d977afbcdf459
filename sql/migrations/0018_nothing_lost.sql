-- What a region is told about a file or submission refused whole, in its own words (Indonesian),
-- next to the operator's English `detail`; and the landing entries that could not be processed as
-- submissions at all, so each gets feedback and a line in the round's summary.
ALTER TABLE ingest.submission ADD COLUMN pesan text;
ALTER TABLE ingest.submission_file ADD COLUMN pesan text;

-- A folder that is not a submission the round can process: a name outside the contract's pattern,
-- a link out of the landing zone, a submission_id already used by another source in the round, or
-- a submission re-delivered under its id with different content. Never staged; always reported.
CREATE TABLE ingest.refused_entry (
    refused_pk   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    round_seq    smallint NOT NULL REFERENCES ingest.round,
    source       text NOT NULL,
    entry        text NOT NULL,          -- printable, truncated relative name
    entry_key    text NOT NULL,          -- sha256 of what identifies the entry (its raw name, its content)
    reason_code  text NOT NULL REFERENCES quality.reason_code,
    detail       text NOT NULL,          -- for operators (English)
    pesan        text NOT NULL,          -- for the region (Indonesian)
    feedback_dir text NOT NULL,          -- under feedback/<round_id>/; never a valid submission_id
    rows         jsonb NOT NULL DEFAULT '{}',  -- data file -> data rows found (files inside the landing zone only)
    first_seen   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (round_seq, source, entry_key)
);

-- Notifications: the intent is recorded before sending, with a delivery id that stays the same on
-- every retry (the email's Message-ID, the webhook body's delivery_id), so a crash between sending
-- and recording makes at most a duplicate the receiver can recognise.
ALTER TABLE publish.notification ADD COLUMN delivery_id uuid;
UPDATE publish.notification SET delivery_id = md5(topic || '/' || channel || '/' || target)::uuid;
ALTER TABLE publish.notification ALTER COLUMN delivery_id SET NOT NULL;
ALTER TABLE publish.notification ALTER COLUMN sent_at DROP NOT NULL;
ALTER TABLE publish.notification ALTER COLUMN sent_at DROP DEFAULT;
ALTER TABLE publish.notification ADD COLUMN intended_at timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX notification_delivery_idx ON publish.notification (delivery_id);
