-- At least once, and a copy sent again says so. A notice's sending is recorded as started before
-- the message leaves and cleared when SENT is recorded: a PENDING row with `sending_since` set was
-- being sent when the notifier stopped (it may have arrived), so the next run sends it again marked
-- as a resend and records that in `resent`. `attempts` counts every sending started (plus a
-- webhook's retries within one).
ALTER TABLE publish.notification ADD COLUMN sending_since timestamptz;
ALTER TABLE publish.notification ADD COLUMN resent boolean NOT NULL DEFAULT false;
-- A PENDING row left by the code before this migration recorded only the intent: its sending may
-- have started, so its outcome is unknown.
UPDATE publish.notification SET sending_since = intended_at WHERE status = 'PENDING';
