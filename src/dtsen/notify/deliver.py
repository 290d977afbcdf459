"""Deliver the notifications of a published version and of a round's feedback: at least once each,
and a copy sent again says so.

Exactly-once delivery to a mail server or a webhook is impossible: the process can die after the
server accepted a message and before that is recorded. What is done instead, per delivery, in
publish.notification: the intent and the start of each sending are committed before the message
leaves (`sending_since`), and SENT is recorded after. A retried task skips what was SENT. A row
still PENDING with a sending started has an unknown outcome (it may have arrived): it is sent again
with the same delivery id (the email's Message-ID and X-DTSEN-Delivery-Id, the webhook body's
`delivery_id`) and marked as a resend (the email's subject, body and X-DTSEN-Resend header; the
webhook's `redelivery`), so a recipient who has the first copy knows this one repeats it. A sending
the mail server surely refused (senders.NOT_ACCEPTED) left nothing behind, so its retry is no resend.
Email sending is injected (`send`): the Airflow tasks pass the SMTP provider's hook, tests and the
CLI may pass anything that delivers an `Email`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from dtsen.errors import DataError
from dtsen.notify.messages import Email, program_email, program_payload, region_emails, version_location
from dtsen.notify.senders import NOT_ACCEPTED
from dtsen.notify.subscribers import Subscribers
from dtsen.notify.webhook import WebhookError, post_signed
from dtsen.publish.version import PublishError, unrecorded_warning

log = logging.getLogger(__name__)

SendEmail = Callable[[Email], None]
DELIVERY_NAMESPACE = uuid.UUID("6f1c2d1e-5b0a-4f49-9d7e-0d75e0d75e00")


def delivery_id(topic: str, channel: str, target: str) -> str:
    """The same id for the same notice to the same target, on every attempt."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{topic}\n{channel}\n{target}"))


@dataclass(frozen=True)
class _Sending:
    delivery_id: str
    done: bool  # an earlier run recorded it delivered: nothing to send
    resend: bool  # an earlier sending's outcome is unknown: this copy may be the second


def _start(conn: psycopg.Connection, topic: str, channel: str, target: str) -> _Sending:
    """Record the intent to deliver and that a sending starts, committed before the message leaves.

    The one place below a step that commits: each delivery's record must be durable before the
    message leaves, so the connection must not be inside a transaction block (psycopg refuses the
    commit there). The row is locked while read, so two notifiers never both take it for a first."""
    did = delivery_id(topic, channel, target)
    # no conflict target: the deterministic delivery_id has a unique index of its own, and two runs
    # inserting the same notice at once would otherwise fail on it
    conn.execute(
        "INSERT INTO publish.notification (topic, channel, target, status, attempts, delivery_id) "
        "VALUES (%s, %s, %s, 'PENDING', 0, %s) ON CONFLICT DO NOTHING",
        (topic, channel, target, did),
    )
    status, stored, unknown = conn.execute(
        "SELECT status, delivery_id, sending_since IS NOT NULL FROM publish.notification "
        "WHERE topic = %s AND channel = %s AND target = %s FOR UPDATE",
        (topic, channel, target),
    ).fetchone()
    if status == "PENDING":
        conn.execute(
            "UPDATE publish.notification SET attempts = attempts + 1, "
            "sending_since = coalesce(sending_since, now()) WHERE delivery_id = %s",
            (stored,),
        )
    conn.commit()
    return _Sending(str(stored), status != "PENDING", status == "PENDING" and unknown)


def _delivered(conn: psycopg.Connection, sending: _Sending, status: str, retries: int = 0) -> None:
    """Record the delivery: `status`, the attempts beyond the one `_start` counted, and whether it went
    out as a resend."""
    conn.execute(
        "UPDATE publish.notification SET status = %s, attempts = attempts + %s, sent_at = now(), "
        "sending_since = NULL, resent = resent OR %s WHERE delivery_id = %s",
        (status, retries, sending.resend, sending.delivery_id),
    )
    conn.commit()


def _not_accepted(conn: psycopg.Connection, sending: _Sending) -> None:
    """The server surely refused this sending: unless an earlier one's outcome is unknown, the next
    sending is a first again, not a resend."""
    if not sending.resend:
        conn.execute(
            "UPDATE publish.notification SET sending_since = NULL WHERE delivery_id = %s",
            (sending.delivery_id,),
        )
        conn.commit()


def send_once(conn: psycopg.Connection, topic: str, email: Email, send: SendEmail) -> int:
    """Send `email` to each of its recipients not yet sent this topic (marked as a resend where an
    earlier sending's outcome is unknown); returns how many were sent."""
    sent = 0
    for address in email.to:
        sending = _start(conn, topic, "email", address)
        if sending.done:
            continue
        one = replace(email, to=(address,), delivery_id=sending.delivery_id)
        try:
            send(one.as_resend() if sending.resend else one)
        except NOT_ACCEPTED:
            _not_accepted(conn, sending)
            raise
        _delivered(conn, sending, "SENT")
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
    """POST a signed payload unless this topic already reached `target`; 1 if delivered now. A POST
    that may repeat an earlier one (whose outcome is unknown) says `redelivery`."""
    sending = _start(conn, topic, "webhook", target)
    if sending.done:
        return 0
    try:
        delivery = post_signed(
            url, payload, secret(), delivery_id=sending.delivery_id, redelivery=sending.resend
        )
    except WebhookError as exc:
        if not exc.maybe_arrived:  # else (a timeout, a 5xx) the next POST says redelivery
            _not_accepted(conn, sending)
        failures.append(str(exc))
        return 0
    _delivered(conn, sending, str(delivery.status), delivery.attempts - 1)
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
