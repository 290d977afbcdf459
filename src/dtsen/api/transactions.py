"""Asynchronous DCI transactions: a request answered with an ACK, its on-* envelope POSTed to the
client's callback (header.sender_uri) afterwards, retried in the background, and its state kept for
`txn/status` (table api.txn, migration 0034).

Search works after the ACK: its items are kept sealed (encrypted under a key derived from the
disclosure key: an idtype-value query holds a NIK) until the answer is delivered or given up, and the
answer is computed from the version pinned when the request came in, so a retry carries the same
records (each attempt that carries records is logged as a disclosure before it leaves). Subscribe,
unsubscribe and txn-status do their work before the ACK; their stored answer is sent. What is kept
of an answer (`answer`) has no records and no subscription secrets.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from cryptography.fernet import Fernet, InvalidToken

from dtsen.api import clients, dci
from dtsen.notify import webhook

log = logging.getLogger(__name__)

ANSWER_ACTION = {
    "search": "on-search",
    "subscribe": "on-subscribe",
    "unsubscribe": "on-unsubscribe",
    "txn-status": "txn-on-status",
}
_RESPONSE_LIST = {"search": "search_response", "subscribe": "subscribe_response"}


def ack(correlation_id: str) -> dict:
    """The DCI Ack: the request was taken; its answer goes to the callback."""
    return {
        "message": {
            "ack_status": "ACK",
            "timestamp": dci.now(),
            "error": {},
            "correlation_id": correlation_id,
        }
    }


def _sealer(key: bytes) -> Fernet:
    derived = hmac.new(key, b"dtsen.api.txn-request", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(items: list[dict], key: bytes) -> bytes:
    return _sealer(key).encrypt(json.dumps(items, separators=(",", ":")).encode())


def unseal(sealed: bytes, key: bytes) -> list[dict]:
    return json.loads(_sealer(key).decrypt(bytes(sealed)))


def open_search(
    conn: psycopg.Connection,
    client_id: str,
    transaction_id: str,
    items: list[dict],
    version: int,
    callback_url: str,
    key: bytes,
) -> str:
    """A search taken for later: its correlation id."""
    correlation = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO api.txn (correlation_id, client_id, action, transaction_id, reference_ids, version, "
        "sealed_request, callback_url) VALUES (%s, %s, 'search', %s, %s, %s, %s, %s)",
        (
            correlation,
            client_id,
            transaction_id,
            [i["reference_id"] for i in items],
            version,
            seal(items, key),
            callback_url,
        ),
    )
    return correlation


def record_answered(
    conn: psycopg.Connection,
    client_id: str,
    action: str,
    transaction_id: str,
    reference_ids: list[str],
    callback_url: str,
    status: str,
    message: dict,
) -> str:
    """A transaction whose work is done (subscribe, unsubscribe, txn-status): its answer waits for
    delivery. `message` is the on-* message as kept (no secrets)."""
    correlation = message["correlation_id"]
    conn.execute(
        "INSERT INTO api.txn (correlation_id, client_id, action, transaction_id, reference_ids, "
        "callback_url, status, answer, processed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())",
        (
            correlation,
            client_id,
            action,
            transaction_id,
            reference_ids,
            callback_url,
            status,
            json.dumps(message),
        ),
    )
    return correlation


def kept(action: str, message: dict) -> dict:
    """What is kept of an answer's message: a search without its records, a subscribe without the
    subscriptions' secrets."""
    message = json.loads(json.dumps(message))
    for item in message.get(_RESPONSE_LIST.get(action, ""), []):
        if isinstance(item.get("data"), dict):
            item["data"].pop("reg_records", None)
        for subscription in item.get("subscriptions", []):
            subscription.pop("secret", None)
    return message


@dataclass(frozen=True)
class Claimed:
    correlation_id: str
    client_id: str
    action: str
    transaction_id: str
    version: int | None
    sealed_request: bytes | None
    callback_url: str
    status: str
    answer: dict | None
    attempts: int


def claim(conn: psycopg.Connection, correlation_id: str, retry_seconds: float) -> Claimed | None:
    """The transaction, if its delivery is due and no one else holds it; its next attempt is scheduled
    now (backing off), which also keeps another API process from taking it meanwhile."""
    row = conn.execute(
        "SELECT correlation_id::text, client_id, action, transaction_id, version, sealed_request, "
        "callback_url, status, answer, attempts FROM api.txn WHERE correlation_id = %s "
        "AND delivery = 'pending' AND next_attempt_at <= now() FOR UPDATE SKIP LOCKED",
        (correlation_id,),
    ).fetchone()
    if row is None:
        return None
    attempts = row[-1] + 1
    conn.execute(
        "UPDATE api.txn SET attempts = %s, next_attempt_at = now() + make_interval(secs => %s) "
        "WHERE correlation_id = %s",
        (attempts, retry_seconds * 2 ** (attempts - 1), correlation_id),
    )
    return Claimed(*row[:-1], attempts)


def processed(conn: psycopg.Connection, correlation_id: str, status: str, message: dict) -> None:
    """A search's answer, kept the first time it is computed."""
    conn.execute(
        "UPDATE api.txn SET status = %s, answer = %s, processed_at = now() "
        "WHERE correlation_id = %s AND processed_at IS NULL",
        (status, json.dumps(kept("search", message)), correlation_id),
    )


def delivered(conn: psycopg.Connection, correlation_id: str, attempt: webhook.Attempt, last_try: bool) -> str:
    """The outcome of one POST: `delivered`, `pending` (tried again later) or `failed` (given up:
    refused destination, a redirect, a 4xx other than 408/429, or the last attempt). The sealed items go when the
    transaction is over."""
    if attempt.delivered:
        state = "delivered"
    elif (
        last_try
        or (attempt.error or "").startswith("refused:")
        # a redirect is not followed (it could point anywhere, inside too): the receiver's URL is wrong
        or (attempt.status is not None and 300 <= attempt.status < 500 and attempt.status not in (408, 429))
    ):
        state = "failed"
    else:
        state = "pending"
    conn.execute(
        "UPDATE api.txn SET delivery = %s, last_error = %s, "
        "delivered_at = CASE WHEN %s THEN now() END, "
        "sealed_request = CASE WHEN %s = 'pending' THEN sealed_request END WHERE correlation_id = %s",
        (state, attempt.error, state == "delivered", state, correlation_id),
    )
    return state


def given_up(conn: psycopg.Connection, correlation_id: str, why: str) -> None:
    conn.execute(
        "UPDATE api.txn SET delivery = 'failed', last_error = %s, sealed_request = NULL WHERE correlation_id = %s",
        (why, correlation_id),
    )


def due(conn: psycopg.Connection, limit: int = 50) -> list[str]:
    rows = conn.execute(
        "SELECT correlation_id::text FROM api.txn WHERE delivery = 'pending' AND next_attempt_at <= now() "
        "ORDER BY next_attempt_at LIMIT %s",
        (limit,),
    ).fetchall()
    return [r[0] for r in rows]


def live_client(conn: psycopg.Connection, client_id: str) -> clients.Client | None:
    """The client as it is now (its scope may have changed since it asked), None if revoked."""
    return clients.client_by_id(conn, client_id)


# -- txn/status ----------------------------------------------------------------------------------

ATTRIBUTES = ("transaction_id", "reference_id_list", "correlation_id")


def find(conn: psycopg.Connection, client_id: str, attribute: str, value: object, txn_type: str | None):
    """The client's latest transaction matching (attribute, value), of `txn_type` if given; None if
    there is none. Another client's transactions are never found."""
    return conn.execute(_FIND[attribute], {"client": client_id, "value": value, "type": txn_type}).fetchone()


_FOUND = (
    "SELECT correlation_id::text, action, transaction_id, reference_ids, received_at, status, answer "
    "FROM api.txn WHERE client_id = %(client)s AND (%(type)s::text IS NULL OR action = %(type)s) AND "
)
_LATEST = " ORDER BY received_at DESC LIMIT 1"
_FIND = {
    "transaction_id": _FOUND + "transaction_id = %(value)s" + _LATEST,
    "correlation_id": _FOUND + "correlation_id = %(value)s::uuid" + _LATEST,
    "reference_id_list": _FOUND + "reference_ids && %(value)s::text[]" + _LATEST,
}


def txn_status(found) -> dict:
    """A found transaction as DCI txn_status: its answer as kept, or its items pending."""
    correlation, action, transaction, references, received, status, answer = found
    if answer is not None:
        return answer
    stamp = received.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    items = [{"reference_id": r, "timestamp": stamp, "status": "pdng"} for r in references]
    return {"transaction_id": transaction, "correlation_id": correlation, _RESPONSE_LIST[action]: items}


# -- delivery --------------------------------------------------------------------------------------


def deliver(
    pool,
    correlation_id: str,
    *,
    build: Callable[[psycopg.Connection, Claimed], dict | None],
    seal_envelope: Callable[[dict], dict],
    retry_seconds: float,
    max_attempts: int,
    allowlist,
    timeout: float,
) -> str | None:
    """One attempt to deliver a due transaction's on-* envelope; its delivery state after it (None if it
    was not due or another process holds it). `build` makes the envelope from the claimed row (None:
    nothing may be sent any more, e.g. the client was revoked)."""
    with pool.connection() as conn:
        taken = claim(conn, correlation_id, retry_seconds)
    if taken is None:
        return None
    try:
        with pool.connection() as conn:
            envelope = build(conn, taken)
            if envelope is None:
                given_up(conn, correlation_id, "the client was revoked: nothing sent")
                return "failed"
    except InvalidToken:
        with pool.connection() as conn:
            given_up(conn, correlation_id, "the request could not be unsealed (the disclosure key changed)")
        return "failed"
    body = json.dumps(seal_envelope(envelope), separators=(",", ":"), ensure_ascii=False).encode()
    attempt = asyncio.run(
        webhook.post_body(
            taken.callback_url,
            body,
            {"Content-Type": "application/json"},
            allowlist=allowlist,
            timeout=timeout,
        )
    )
    with pool.connection() as conn:
        state = delivered(conn, correlation_id, attempt, taken.attempts >= max_attempts)
    if state != "delivered":
        # the error is in words (webhook.Attempt), never a value of the envelope
        log.warning(
            "callback %s of %s attempt %d: %s", taken.action, taken.client_id, taken.attempts, attempt.error
        )
    return state
