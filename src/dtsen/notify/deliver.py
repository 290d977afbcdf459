"""Deliver the notifications of a published version and of a round's feedback, once each.

Exactly-once delivery to a mail server or a webhook is impossible; what is done instead: the intent
of each delivery is recorded (committed) in publish.notification before it is sent, with a delivery
id derived from what is delivered to whom, and it is marked SENT after. A retried task skips what
was sent; a crash between sending and marking resends with the same delivery id (the email's
Message-ID, the webhook body's `delivery_id`), so the duplicate is rare and recognisable. Email
sending is injected (`send`): the Airflow tasks pass the SMTP provider's hook, tests and the CLI may
pass anything that delivers an `Email`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psycopg

from dtsen.errors import DataError
from dtsen.notify.messages import Email, program_email, program_payload, region_emails, version_location
from dtsen.notify.subscribers import Subscribers
from dtsen.notify.webhook import WebhookError, post_signed
from dtsen.publish.version import PublishError, unrecorded_warning

log = logging.getLogger(__name__)

SendEmail = Callable[[Email], None]
DELIVERY_NAMESPACE = uuid.UUID("6f1c2d1e-5b0a-4f49-9d7e-0d75e0d75e00")


def delivery_id(topic: str, channel: str, target: str) -> str:
    """The same id for the same notice to the same target, on every attempt."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{topic}\n{channel}\n{target}"))


def _intend(conn: psycopg.Connection, topic: str, channel: str, target: str) -> tuple[str, bool]:
    """Record the intent to deliver (committed before sending); returns (delivery id, already sent).

    The one place below a step that commits: each delivery's record must be durable before the
    message leaves, so the connection must not be inside a transaction block (psycopg refuses the
    commit there)."""
    did = delivery_id(topic, channel, target)
    conn.execute(
        "INSERT INTO publish.notification (topic, channel, target, status, attempts, delivery_id) "
        "VALUES (%s, %s, %s, 'PENDING', 0, %s) ON CONFLICT (topic, channel, target) DO NOTHING",
        (topic, channel, target, did),
    )
    status, stored = conn.execute(
        "SELECT status, delivery_id FROM publish.notification WHERE topic = %s AND channel = %s AND target = %s",
        (topic, channel, target),
    ).fetchone()
    conn.commit()
    return str(stored), status != "PENDING"


def _delivered(conn: psycopg.Connection, did: str, status: str, attempts: int) -> None:
    conn.execute(
        "UPDATE publish.notification SET status = %s, attempts = attempts + %s, sent_at = now() WHERE delivery_id = %s",
        (status, attempts, did),
    )
    conn.commit()


def send_once(conn: psycopg.Connection, topic: str, email: Email, send: SendEmail) -> int:
    """Send `email` to each of its recipients not yet sent this topic; returns how many were sent."""
    sent = 0
    for address in email.to:
        did, done = _intend(conn, topic, "email", address)
        if done:
            continue
        send(replace(email, to=(address,), delivery_id=did))
        _delivered(conn, did, "SENT", 1)
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
            webhooks += _post_once(conn, topic, hook.url, hook.url, payload, hook.secret, failures)
    unsigned: list[str] = []  # API subscriptions left out for want of the key that signs them
    for program in sorted(manifest["programs"]):  # clients of the registry API that subscribed
        webhooks += _notify_api_subscribers(conn, version, program, manifest, location, failures, unsigned)
    if unsigned:  # a configuration error: retrying cannot help, so fail at once and say what is missing
        raise DataError(
            "; ".join(
                [
                    f"version {version} was not announced to {len(unsigned)} registry API subscription(s) "
                    f"({', '.join(unsigned)}): DTSEN_API_DISCLOSURE_KEY is not set where this task runs. "
                    "Their callbacks are signed with secrets derived from that key: give Airflow the key "
                    "the registry API (`dtsen api`) runs with, then clear this task (what was delivered "
                    "is not sent again)",
                    *failures,
                ]
            )
        )
    if failures:
        raise WebhookError("; ".join(failures))
    return {"version": version, "emails_sent": emails, "webhooks_delivered": webhooks}


def _post_once(
    conn: psycopg.Connection,
    topic: str,
    url: str,
    target: str,
    payload: dict,
    secret: Callable[[], bytes],
    failures: list[str],
) -> int:
    """POST a signed payload unless this topic already reached `target`; 1 if delivered now."""
    did, done = _intend(conn, topic, "webhook", target)
    if done:
        return 0
    try:
        delivery = post_signed(url, payload, secret(), delivery_id=did)
    except WebhookError as exc:
        failures.append(str(exc))
        return 0
    _delivered(conn, did, str(delivery.status), delivery.attempts)
    return 1


def _notify_api_subscribers(
    conn: psycopg.Connection,
    version: int,
    program: str,
    manifest: dict,
    location: str,
    failures: list[str],
    unsigned: list[str],
) -> int:
    """Each live API subscription of the program, signed with its own secret (dtsen.api.subscriptions).
    That secret is an HMAC under DTSEN_API_DISCLOSURE_KEY (never stored), so without the key nothing
    can be signed: the subscriptions are listed in `unsigned` and the others are still notified."""
    from dtsen.api.dci import VERSION_EVENT
    from dtsen.api.subscriptions import of_program, secret_of
    from dtsen.config import settings

    subscribed = of_program(conn, program)
    if not subscribed:
        return 0
    key = settings().api_disclosure_key
    if not key:
        unsigned += [f"{sub.client_id} for {program}" for sub in subscribed]
        return 0
    payload = program_payload(manifest, program, location) | {
        "reg_event_type": VERSION_EVENT,
        "api_file": f"/registry/versions/{version}/programs/{program}.parquet",
    }
    delivered = 0
    for sub in subscribed:
        delivered += _post_once(
            conn,
            f"version:{version}:program:{program}",
            sub.callback_url,
            f"{sub.callback_url}#{sub.code}",
            payload | {"subscription_code": sub.code},
            lambda code=sub.code: secret_of(code, key.encode()),
            failures,
        )
    return delivered


def notify_regions(
    conn: psycopg.Connection, round_id: str, feedback: list[dict], subscribers: Subscribers, send: SendEmail
) -> dict:
    sent = 0
    for regency, email in region_emails(round_id, feedback, subscribers):
        sent += send_once(conn, f"round:{round_id}:region:{regency}", email, send)
    return {"round_id": round_id, "emails_sent": sent}


def version_to_announce(conn: psycopg.Connection, requested: int | None, publish_root: Path) -> int | None:
    """The version to notify about: the one asked for, else the current one, unless a newer version
    was written to disk whose publication the warehouse never recorded (an interrupted publish):
    then say so, instead of announcing the older version as current."""
    if requested is not None:
        return requested
    warning = unrecorded_warning(conn, publish_root)
    if warning:
        raise PublishError(warning)
    current = conn.execute("SELECT version FROM publish.current_version").fetchone()
    return current[0] if current else None
