"""Subscriptions of API clients to "version published" events (DCI subscribe / unsubscribe).

A subscription is a callback URL for one program of the client's scope. Its signing secret is not
stored: it is an HMAC of the subscription's code under DTSEN_CALLBACK_SIGNING_KEY, handed to the
client at subscription, and recomputed by `dtsen_notify_programs` when it signs a delivery. That key is
not the disclosure log's (DTSEN_API_DISCLOSURE_KEY, which stays in the API's container): the Airflow
workers that sign callbacks hold only the signing key.

Subscriptions made before the two keys were separated (migration 0031) are marked
`signed_with = 'disclosure-key'`: their secrets were derived from the disclosure key, so they are
signed with it while it is where the notify step runs. Subscribing again (same client, program and URL)
moves such a subscription to the signing key and hands the client its new secret.
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

SIGNING_KEY = "callback-key"  # api.subscription.signed_with: DTSEN_CALLBACK_SIGNING_KEY
LEGACY_KEY = "disclosure-key"  # ... made before migration 0031: DTSEN_API_DISCLOSURE_KEY
KEY_SETTING = {SIGNING_KEY: "DTSEN_CALLBACK_SIGNING_KEY", LEGACY_KEY: "DTSEN_API_DISCLOSURE_KEY"}


@dataclass(frozen=True)
class Subscription:
    code: str
    client_id: str
    program: str
    callback_url: str
    signed_with: str = SIGNING_KEY


def secret_of(code: str, key: bytes) -> bytes:
    return hmac.new(key, f"subscription:{code}".encode(), hashlib.sha256).hexdigest().encode()


def signing_secret(sub: Subscription) -> bytes | None:
    """The secret that signs `sub`'s callbacks, from the key it was made under; None when that key is
    not set in this process (KEY_SETTING[sub.signed_with] names it)."""
    cfg = settings()
    key = cfg.api_disclosure_key if sub.signed_with == LEGACY_KEY else cfg.callback_signing_key
    return secret_of(sub.code, key.encode()) if key else None


class SubscriptionLimit(DataError):
    """The client would hold more live subscriptions than DTSEN_MAX_SUBSCRIPTIONS_PER_CLIENT."""


class NoSigningKey(DataError):
    """DTSEN_CALLBACK_SIGNING_KEY is not set: no secret can be handed out, so nothing is subscribed."""


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
    SubscriptionLimit if the client would hold more than DTSEN_MAX_SUBSCRIPTIONS_PER_CLIENT; NoSigningKey
    if DTSEN_CALLBACK_SIGNING_KEY is not set. Each returned subscription's secret is signing_secret()."""
    if not settings().callback_signing_key:
        raise NoSigningKey(
            "subscriptions are not available: DTSEN_CALLBACK_SIGNING_KEY is not set where the registry API runs"
        )
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
            "SELECT code, signed_with FROM api.subscription WHERE client_id = %s AND program = %s "
            "AND callback_url = %s AND cancelled_at IS NULL",
            (client_id, program, callback_url),
        ).fetchone()
        code = row[0] if row else f"sub-{secrets.token_hex(12)}"
        if row is not None and row[1] != SIGNING_KEY:  # made under the disclosure key: move it over
            conn.execute("UPDATE api.subscription SET signed_with = %s WHERE code = %s", (SIGNING_KEY, code))
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
        "SELECT s.code, s.client_id, s.program, s.callback_url, s.signed_with FROM api.subscription s "
        "JOIN api.client c USING (client_id) "
        "WHERE s.program = %s AND s.cancelled_at IS NULL AND c.revoked_at IS NULL AND %s = ANY (c.programs) "
        "ORDER BY s.code",
        (program, program),
    ).fetchall()
    return [Subscription(*r) for r in rows]
