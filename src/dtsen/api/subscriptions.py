"""Subscriptions of API clients to "version published" events (DCI subscribe / unsubscribe).

A subscription is a callback URL for one program of the client's scope. Its signing secret is not
stored: it is an HMAC of the subscription's code under the server's key, handed to the client once at
subscription, and recomputed by `dtsen_notify_programs` when it signs a delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import psycopg

from dtsen.config import settings
from dtsen.errors import DataError
from dtsen.notify.egress import check_and_resolve


@dataclass(frozen=True)
class Subscription:
    code: str
    client_id: str
    program: str
    callback_url: str


def secret_of(code: str, key: bytes) -> bytes:
    return hmac.new(key, f"subscription:{code}".encode(), hashlib.sha256).hexdigest().encode()


class SubscriptionLimit(DataError):
    """The client would hold more live subscriptions than DTSEN_MAX_SUBSCRIPTIONS_PER_CLIENT."""


def check_callback(url: str) -> str:
    """A callback URL DTSEN may POST to (dtsen.notify.egress: https, no user name, a public address
    after DNS, unless DTSEN_CALLBACK_ALLOWLIST allows it); RefusedDestination says why not. It resolves
    the host: call it off the event loop. Each POST checks it again."""
    check_and_resolve(url, settings().callback_allowlist)
    return url


def subscribe(
    conn: psycopg.Connection, client_id: str, programs: list[str], callback_url: str
) -> list[Subscription]:
    """One subscription per program (an existing one for the same client, program and URL is kept).
    SubscriptionLimit if the client would hold more than DTSEN_MAX_SUBSCRIPTIONS_PER_CLIENT."""
    check_callback(callback_url)
    cap = settings().max_subscriptions_per_client
    # one subscribing transaction of a client at a time, so two cannot both pass the count
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('dtsen.subscribe'), hashtext(%s))", (client_id,))
    (live,) = conn.execute(
        "SELECT count(*) FROM api.subscription WHERE client_id = %s AND cancelled_at IS NULL", (client_id,)
    ).fetchone()
    made = []
    for program in programs:
        row = conn.execute(
            "SELECT code FROM api.subscription WHERE client_id = %s AND program = %s AND callback_url = %s "
            "AND cancelled_at IS NULL",
            (client_id, program, callback_url),
        ).fetchone()
        code = row[0] if row else f"sub-{secrets.token_hex(12)}"
        if row is None:
            live += 1
            if live > cap:
                raise SubscriptionLimit(
                    f"this client may hold at most {cap} live subscriptions (one per program and callback "
                    "URL): unsubscribe from some first"
                )
            conn.execute(
                "INSERT INTO api.subscription (code, client_id, program, callback_url) VALUES (%s, %s, %s, %s)",
                (code, client_id, program, callback_url),
            )
        made.append(Subscription(code, client_id, program, callback_url))
    return made


def unsubscribe(conn: psycopg.Connection, client_id: str, codes: list[str]) -> dict[str, str]:
    """code -> "unsubscribe" (ended now or before) or "unknown" (not this client's)."""
    out = {}
    for code in codes:
        row = conn.execute(
            "UPDATE api.subscription SET cancelled_at = coalesce(cancelled_at, now()) "
            "WHERE code = %s AND client_id = %s RETURNING code",
            (code, client_id),
        ).fetchone()
        out[code] = "unsubscribe" if row else "unknown"
    return out


def of_program(conn: psycopg.Connection, program: str) -> list[Subscription]:
    """The live subscriptions of a program, of clients not revoked (whom dtsen_notify_programs tells)."""
    rows = conn.execute(
        "SELECT s.code, s.client_id, s.program, s.callback_url FROM api.subscription s "
        "JOIN api.client c USING (client_id) "
        "WHERE s.program = %s AND s.cancelled_at IS NULL AND c.revoked_at IS NULL AND %s = ANY (c.programs) "
        "ORDER BY s.code",
        (program, program),
    ).fetchall()
    return [Subscription(*r) for r in rows]
