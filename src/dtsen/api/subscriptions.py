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
from urllib.parse import urlparse

import psycopg

from dtsen.errors import DataError


@dataclass(frozen=True)
class Subscription:
    code: str
    client_id: str
    program: str
    callback_url: str


def secret_of(code: str, key: bytes) -> bytes:
    return hmac.new(key, f"subscription:{code}".encode(), hashlib.sha256).hexdigest().encode()


def check_callback(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise DataError("the callback (header.sender_uri) must be an http(s) URL")
    return url


def subscribe(
    conn: psycopg.Connection, client_id: str, programs: list[str], callback_url: str
) -> list[Subscription]:
    """One subscription per program (an existing one for the same client, program and URL is kept)."""
    check_callback(callback_url)
    made = []
    for program in programs:
        row = conn.execute(
            "SELECT code FROM api.subscription WHERE client_id = %s AND program = %s AND callback_url = %s "
            "AND cancelled_at IS NULL",
            (client_id, program, callback_url),
        ).fetchone()
        code = row[0] if row else f"sub-{secrets.token_hex(12)}"
        if row is None:
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
