"""Sending the answers of asynchronous transactions (dtsen.api.transactions) to the client's callback:
at once after the ACK, and again in the background until delivered or given up."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from dtsen.api import dci, subscriptions, transactions
from dtsen.api.deps import State, fail
from dtsen.api.models import Header
from dtsen.errors import DataError

log = logging.getLogger(__name__)


async def callback_of(header: Header) -> str:
    """header.sender_uri, where the answer goes: required, and within the callback rules (https to a
    public address unless DTSEN_CALLBACK_ALLOWLIST allows it). It resolves the host: off the loop."""
    uri = header.sender_uri
    if not isinstance(uri, str) or not uri:
        raise fail(
            400,
            "err.sender_uri.invalid",
            "an asynchronous request needs header.sender_uri, the URL its answer is POSTed to "
            "(or use the /registry/sync/ route)",
        )
    try:
        return await run_in_threadpool(subscriptions.check_callback, uri)
    except DataError as exc:
        raise fail(400, "err.sender_uri.invalid", str(exc)) from exc


def _search_envelope(app: State, conn: psycopg.Connection, client, taken: transactions.Claimed) -> dict:
    from dtsen.api.models import SearchMessage
    from dtsen.api.routes.search import answer_envelope

    items = transactions.unseal(taken.sealed_request, app.key)
    message = SearchMessage.model_validate({"transaction_id": taken.transaction_id, "search_request": items})
    try:
        # savepoint: a refused search (an unknown version) leaves the row to record it
        with conn.transaction():  # savepoint
            envelope = answer_envelope(app, conn, client, message, taken.version, taken.correlation_id)
    except HTTPException as exc:  # what a sync search answers with an HTTP error rejects every item here
        error = (exc.detail or {}).get("errors", [{}])[0] if isinstance(exc.detail, dict) else {}
        code = "rjct.search_criteria.invalid"
        answers = [
            dci.rejected(i["reference_id"], code, str(error.get("message", "the search was refused")))
            for i in items
        ]
        envelope = {
            "signature": "",
            "header": dci.answer_header(client.client_id, "on-search", "rjct", len(answers), len(answers)),
            "message": {
                "transaction_id": taken.transaction_id,
                "correlation_id": taken.correlation_id,
                "search_response": answers,
            },
        }
    transactions.processed(conn, taken.correlation_id, envelope["header"]["status"], envelope["message"])
    return envelope


def _with_secrets(conn: psycopg.Connection, message: dict) -> dict:
    """An on-subscribe message as kept, with each subscription's secret derived again."""
    for item in message.get("subscribe_response", []):
        for made in item.get("subscriptions", []):
            row = conn.execute(
                "SELECT code, client_id, program, callback_url, signed_with FROM api.subscription WHERE code = %s",
                (made["code"],),
            ).fetchone()
            secret = subscriptions.signing_secret(subscriptions.Subscription(*row)) if row else None
            if secret is not None:
                made["secret"] = secret.decode()
    return message


def build(app: State, conn: psycopg.Connection, taken: transactions.Claimed) -> dict | None:
    """The on-* envelope of a claimed transaction; None if its client has been revoked since."""
    client = transactions.live_client(conn, taken.client_id)
    if client is None:
        return None
    if taken.action == "search":
        return _search_envelope(app, conn, client, taken)
    message = dict(taken.answer or {})
    if taken.action == "subscribe":
        message = _with_secrets(conn, message)
    listed = message.get("subscribe_response") or message.get("subscription_status") or [None]
    return {
        "signature": "",
        "header": dci.answer_header(
            client.client_id, transactions.ANSWER_ACTION[taken.action], taken.status, len(listed), len(listed)
        ),
        "message": message,
    }


def _seal(app: State):
    signer = getattr(app, "signer", None)
    return signer.seal if signer is not None else (lambda envelope: envelope)


def deliver_now(app: State, correlation_id: str) -> str | None:
    """One attempt at a transaction's callback, if it is due (run after the ACK and by the retry loop)."""
    return transactions.deliver(
        app.pool,
        correlation_id,
        build=lambda conn, taken: build(app, conn, taken),
        seal_envelope=_seal(app),
        retry_seconds=app.cfg.api_callback_retry_seconds,
        max_attempts=app.cfg.api_callback_attempts,
        allowlist=app.cfg.callback_allowlist,
        timeout=app.cfg.webhook_timeout_seconds,
    )


def _deliver_due(app: State) -> int:
    with app.pool.connection() as conn:
        waiting = transactions.due(conn)
    for correlation in waiting:
        deliver_now(app, correlation)
    return len(waiting)


async def retry_loop(app: State) -> None:
    """Runs while the API does: callbacks not delivered yet are tried again when due (several API
    processes may run it: a transaction is claimed by one at a time)."""
    every = max(0.5, min(app.cfg.api_callback_retry_seconds, 30.0))
    while True:
        await asyncio.sleep(every)
        try:
            await run_in_threadpool(_deliver_due, app)
        except Exception as exc:  # the loop outlives a warehouse blip; the next round tries again
            log.warning("callback retry round failed: %s", type(exc).__name__)
