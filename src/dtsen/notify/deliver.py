"""Deliver the notifications of a published version and of a round's feedback, once each.

Each delivery is recorded in publish.notification; a retried task skips what already went out, so
program owners and regions are told once. Email sending is injected (`send`): the Airflow tasks pass
the SMTP provider's hook, tests and the CLI may pass anything that delivers an `Email`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg

from dtsen.notify.messages import Email, program_email, program_payload, region_emails, version_location
from dtsen.notify.subscribers import Subscribers
from dtsen.notify.webhook import WebhookError, post_signed

log = logging.getLogger(__name__)

SendEmail = Callable[[Email], None]


def _delivered(conn: psycopg.Connection, topic: str, channel: str, target: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM publish.notification WHERE topic = %s AND channel = %s AND target = %s",
            (topic, channel, target),
        ).fetchone()
        is not None
    )


def _record(
    conn: psycopg.Connection, topic: str, channel: str, target: str, status: str, attempts: int = 1
) -> None:
    conn.execute(
        "INSERT INTO publish.notification (topic, channel, target, status, attempts) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (topic, channel, target) DO NOTHING",
        (topic, channel, target, status, attempts),
    )
    conn.commit()


def send_once(conn: psycopg.Connection, topic: str, email: Email, send: SendEmail) -> int:
    """Send `email` to each of its recipients not yet sent this topic; returns how many were sent."""
    sent = 0
    for address in email.to:
        if _delivered(conn, topic, "email", address):
            continue
        send(Email((address,), email.subject, email.body))
        _record(conn, topic, "email", address, "SENT")
        sent += 1
    return sent


def notify_programs(
    conn: psycopg.Connection, version: int, subscribers: Subscribers, send: SendEmail
) -> dict:
    """Email and webhook every program owner of a PUBLISHED version; webhook failures raise at the end
    (after every other delivery was attempted) so the task fails and is retried."""
    row = conn.execute(
        "SELECT manifest, path FROM publish.version WHERE version = %s AND status IN ('PUBLISHED', 'SUPERSEDED')",
        (version,),
    ).fetchone()
    if not row:
        raise LookupError(f"version {version} is not published")
    manifest, path = row
    location = version_location(subscribers, path, version)
    emails = webhooks = 0
    failures = []
    for program in sorted(manifest["programs"]):
        targets = subscribers.programs.get(program)
        if targets is None:
            log.warning("program %s has no subscribers configured", program)
            continue
        payload = program_payload(manifest, program, location)
        topic = f"version:{version}:program:{program}"
        if targets.emails:
            emails += send_once(conn, topic, program_email(payload, targets.emails), send)
        for hook in targets.webhooks:
            if _delivered(conn, topic, "webhook", hook.url):
                continue
            try:
                delivery = post_signed(hook.url, payload, hook.secret())
            except WebhookError as exc:
                failures.append(str(exc))
                continue
            _record(conn, topic, "webhook", hook.url, str(delivery.status), delivery.attempts)
            webhooks += 1
    if failures:
        raise WebhookError("; ".join(failures))
    return {"version": version, "emails_sent": emails, "webhooks_delivered": webhooks}


def notify_regions(
    conn: psycopg.Connection, round_id: str, feedback: list[dict], subscribers: Subscribers, send: SendEmail
) -> dict:
    sent = 0
    for regency, email in region_emails(round_id, feedback, subscribers):
        sent += send_once(conn, f"round:{round_id}:region:{regency}", email, send)
    return {"round_id": round_id, "emails_sent": sent}
