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

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from dtsen.config import settings
from dtsen.errors import DataError
from dtsen.notify.messages import Email, program_email, program_payload, region_emails, version_location
from dtsen.notify.senders import NOT_ACCEPTED
from dtsen.notify.subscribers import Subscribers
from dtsen.notify.webhook import Attempt, post_once
from dtsen.publish.version import PublishError, unrecorded_warning

log = logging.getLogger(__name__)

SendEmail = Callable[[Email], None]
DELIVERY_NAMESPACE = uuid.UUID("6f1c2d1e-5b0a-4f49-9d7e-0d75e0d75e00")
CONCURRENT_POSTS = 8  # webhooks and callbacks in flight at once
# when an undelivered webhook is tried again, by the sendings so far (then every 6 h), and for how long
RETRY_AFTER_SECONDS = (60, 300, 1800, 7200, 21600)
GIVE_UP_AFTER_DAYS = 3
RETRY_PAUSE_SECONDS = 1.0  # before the one second attempt within a run, after a blip


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
        "sending_since = NULL, resent = resent OR %s, last_error = NULL, next_attempt_at = NULL "
        "WHERE delivery_id = %s",
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
    """Email and webhook every program owner of a PUBLISHED version, and call back every registry API
    subscriber of its programs. A webhook or callback that fails (refused, down, too slow) does not fail
    the step: it is recorded as not delivered, with why and when to try again (`dtsen notify-retry`,
    or a rerun of this step), and listed in the summary under `webhooks_undelivered`."""
    manifest, location = _announced(conn, version, subscribers)
    emails = 0
    for program in sorted(manifest["programs"]):
        targets = subscribers.programs.get(program)
        if targets is None:
            log.warning("program %s has no subscribers configured", program)
        elif targets.emails:
            payload = program_payload(manifest, program, location)
            topic = f"version:{version}:program:{program}"
            emails += send_once(conn, topic, program_email(payload, targets.emails), send)
    unsigned: list[str] = []  # API subscriptions left out for want of the key that signs them
    hooks = _hooks(conn, version, manifest, location, subscribers, unsigned)
    delivered, undelivered = _post_all(conn, hooks)
    if unsigned:  # a configuration error: retrying cannot help, so fail at once and say what is missing
        raise DataError(
            "; ".join(
                [
                    f"version {version} was not announced to {len(unsigned)} registry API subscription(s) "
                    f"({', '.join(unsigned)}): the key their callbacks are signed with is not set where "
                    "this task runs. Give Airflow the DTSEN_CALLBACK_SIGNING_KEY the registry API (`dtsen "
                    "api`) runs with (a subscription made before that key existed is signed with "
                    "DTSEN_API_DISCLOSURE_KEY until its client subscribes again), then clear this task "
                    "(what was delivered is not sent again)",
                    *undelivered,
                ]
            )
        )
    summary = {"version": version, "emails_sent": emails, "webhooks_delivered": delivered}
    return summary | ({"webhooks_undelivered": undelivered} if undelivered else {})


def retry_webhooks(conn: psycopg.Connection, subscribers: Subscribers) -> dict:
    """`dtsen notify-retry`: POST again every webhook and callback of a version announcement that was
    not delivered and whose next attempt is due. One that is no longer configured or subscribed is
    not retried again."""
    # claimed for this run in one statement: a notify-retry running at the same time skips them
    due = conn.execute(
        "UPDATE publish.notification SET next_attempt_at = now() + make_interval(secs => %s) "
        "WHERE channel = 'webhook' AND status = 'PENDING' AND next_attempt_at <= now() "
        "AND topic LIKE 'version:%%:program:%%' RETURNING topic, target",
        (2 * settings().webhook_timeout_seconds + 60,),
    ).fetchall()
    conn.commit()
    wanted = {(topic, target) for topic, target in due}
    delivered, undelivered, keyless = 0, [], set()
    for version in sorted({int(topic.split(":")[1]) for topic, _ in due}):
        manifest, location = _announced(conn, version, subscribers)
        unsigned: list[str] = []
        hooks = [
            h
            for h in _hooks(conn, version, manifest, location, subscribers, unsigned)
            if (h.topic, h.target) in wanted
        ]
        wanted -= {(h.topic, h.target) for h in hooks}
        if unsigned:  # their signing key is missing here: not a reason to give those up
            keyless.add(version)
            undelivered.append(f"version {version}: no key to sign {', '.join(unsigned)}")
        now, still = _post_all(conn, hooks)
        delivered, undelivered = delivered + now, undelivered + still
    for topic, target in wanted:  # a webhook no longer configured, a subscription cancelled
        if int(topic.split(":")[1]) in keyless:
            continue
        conn.execute(
            "UPDATE publish.notification SET next_attempt_at = NULL, "
            "last_error = coalesce(last_error, '') || ' (not retried: no longer subscribed)' "
            "WHERE topic = %s AND channel = 'webhook' AND target = %s",
            (topic, target),
        )
    conn.commit()
    return {"due": len(due), "webhooks_delivered": delivered, "webhooks_undelivered": undelivered}


def _announced(conn: psycopg.Connection, version: int, subscribers: Subscribers) -> tuple[dict, str]:
    row = conn.execute(
        "SELECT manifest, path FROM publish.version WHERE version = %s AND status IN ('PUBLISHED', 'SUPERSEDED')",
        (version,),
    ).fetchone()
    if not row:
        raise LookupError(f"version {version} is not published")
    manifest, path = row
    return manifest, version_location(subscribers, path, version)


@dataclass(frozen=True)
class _Hook:
    """One signed POST of a version's announcement to one receiver."""

    topic: str
    url: str
    target: str  # publish.notification.target
    payload: dict
    secret: Callable[[], bytes]
    who: str  # how the summary names the receiver (no URL: it may carry a receiver's token)


def _hooks(
    conn: psycopg.Connection,
    version: int,
    manifest: dict,
    location: str,
    subscribers: Subscribers,
    unsigned: list[str],
) -> list[_Hook]:
    """The program owners' webhooks (subscribers.json), then each live registry API subscription of the
    version's programs, signed with its own secret (dtsen.api.subscriptions). That secret is an HMAC
    under DTSEN_CALLBACK_SIGNING_KEY (never stored; the disclosure key for a subscription older than
    that key), so without the key it cannot be signed: such subscriptions are listed in `unsigned`
    (with the missing setting) and the others are still notified."""
    from dtsen.api.dci import VERSION_EVENT
    from dtsen.api.subscriptions import KEY_SETTING, of_program, signing_secret

    hooks = []
    for program in sorted(manifest["programs"]):
        targets = subscribers.programs.get(program)
        payload = program_payload(manifest, program, location)
        topic = f"version:{version}:program:{program}"
        for hook in targets.webhooks if targets else ():
            host = urlsplit(hook.url).hostname
            hooks.append(
                _Hook(topic, hook.url, hook.url, payload, hook.secret, f"{program} webhook ({host})")
            )
    for program in sorted(manifest["programs"]):
        payload = program_payload(manifest, program, location) | {
            "reg_event_type": VERSION_EVENT,
            "api_file": f"/registry/versions/{version}/programs/{program}.parquet",
        }
        for sub in of_program(conn, program):
            secret = signing_secret(sub)
            if secret is None:
                unsigned.append(f"{sub.client_id} for {program} ({KEY_SETTING[sub.signed_with]} not set)")
                continue
            hooks.append(
                _Hook(
                    f"version:{version}:program:{program}",
                    sub.callback_url,
                    f"{sub.callback_url}#{sub.code}",
                    payload | {"subscription_code": sub.code},
                    lambda secret=secret: secret,
                    f"registry API client {sub.client_id} ({program}, {sub.code})",
                )
            )
    conn.commit()  # reading done: each delivery below is recorded on its own
    return hooks


def notify_aduan_channel(
    conn: psycopg.Connection, round_id: str, payload: dict, subscribers: Subscribers
) -> tuple[int, list[str]]:
    """POST the round's outcomes of households' objections and proposals (dtsen.cases.outcomes) to each
    webhook of the channel (subscribers.json `aduan`), signed and recorded like a version's webhooks: a
    rerun sends only what was not delivered. Returns (delivered now, what was not and why)."""
    topic = f"round:{round_id}:aduan-outcomes"
    hooks = [
        _Hook(topic, h.url, h.url, payload, h.secret, f"aduan channel webhook ({urlsplit(h.url).hostname})")
        for h in subscribers.aduan.webhooks
    ]
    return _post_all(conn, hooks)


def _post_all(conn: psycopg.Connection, hooks: list[_Hook]) -> tuple[int, list[str]]:
    """POST each hook not yet delivered, up to CONCURRENT_POSTS at a time, each attempt within
    DTSEN_WEBHOOK_TIMEOUT_SECONDS and checked against the callback rules (egress) right before it
    goes; a second attempt only after a blip (Attempt.again_now), none after a timeout. A dead or
    slow receiver holds up no other and fails nothing. Returns (delivered now, what was
    not delivered and why). The warehouse is used from the event loop's one thread only."""
    cfg = settings()

    async def post(hook: _Hook, delivery: str, redelivery: bool) -> Attempt:
        return await post_once(
            hook.url,
            hook.payload,
            hook.secret(),
            delivery_id=delivery,
            redelivery=redelivery,
            allowlist=cfg.callback_allowlist,
            timeout=cfg.webhook_timeout_seconds,
        )

    async def one(hook: _Hook, slots: asyncio.Semaphore) -> str | None:
        async with slots:
            sending = _start(conn, hook.topic, "webhook", hook.target)
            if sending.done:
                return None
            attempt = await post(hook, sending.delivery_id, sending.resend)
            tries = 1
            if attempt.again_now:  # a blip (a 503, a reset): once more after a pause, then leave it
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                again = await post(hook, sending.delivery_id, sending.resend or attempt.maybe_arrived)
                attempt = replace(again, maybe_arrived=again.maybe_arrived or attempt.maybe_arrived)
                tries = 2
            if attempt.delivered:
                _delivered(conn, sending, str(attempt.status), tries - 1)
                return ""
            _undelivered(conn, sending, attempt, tries - 1)
            log.warning("webhook to %s not delivered: %s", hook.who, attempt.error)
            return f"{hook.who}: {attempt.error}"

    async def run() -> list[str | None]:
        slots = asyncio.Semaphore(CONCURRENT_POSTS)
        return await asyncio.gather(*(one(h, slots) for h in hooks))

    outcomes = asyncio.run(run()) if hooks else []
    return outcomes.count(""), [o for o in outcomes if o]


def _undelivered(conn: psycopg.Connection, sending: _Sending, attempt: Attempt, retries: int = 0) -> None:
    """Not delivered: why, and when `dtsen notify-retry` may try again (RETRY_AFTER_SECONDS by the
    sendings so far; none after GIVE_UP_AFTER_DAYS). Unless this or an earlier sending may have
    arrived, the next one is a first again, not a redelivery."""
    conn.execute(
        "UPDATE publish.notification SET last_error = %s, attempts = attempts + %s, "
        "next_attempt_at = CASE WHEN intended_at < now() - make_interval(days => %s) THEN NULL "
        "ELSE now() + make_interval(secs => (%s::int[])[least(attempts, %s)]) END, "
        "sending_since = CASE WHEN %s THEN sending_since END WHERE delivery_id = %s",
        (
            attempt.error,
            retries,
            GIVE_UP_AFTER_DAYS,
            list(RETRY_AFTER_SECONDS),
            len(RETRY_AFTER_SECONDS),
            attempt.maybe_arrived or sending.resend,
            sending.delivery_id,
        ),
    )
    conn.commit()


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
