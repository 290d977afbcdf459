-- A webhook delivery that failed is not a failed notify step: it stays PENDING with why it failed
-- (`last_error`, never personal data: an HTTP status, a timeout, a refused destination) and when
-- `dtsen notify-retry` may try it again (`next_attempt_at`; NULL once automatic retries gave up).
ALTER TABLE publish.notification ADD COLUMN last_error text;
ALTER TABLE publish.notification ADD COLUMN next_attempt_at timestamptz;
CREATE INDEX notification_due ON publish.notification (next_attempt_at)
    WHERE status = 'PENDING' AND next_attempt_at IS NOT NULL;
