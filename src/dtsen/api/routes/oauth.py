"""OAuth2 client credentials: a bearer token for a client's id and secret, sent in the form (or JSON)
or with HTTP Basic (RFC 6749 2.3.1).

Each source address may fail DTSEN_API_TOKEN_TRIES_PER_MINUTE times a minute (a token issued gives its
try back); the secret's scrypt runs on a worker thread, at most two at once, so requests for tokens
cannot take the CPU or the thread pool from searches."""

import base64
import binascii
from urllib.parse import unquote_plus

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dtsen.api import clients
from dtsen.api.deps import AppState, State, json_body, too_many

router = APIRouter()
_HASHING: dict[str, anyio.CapacityLimiter] = {}  # made in the event loop, on first use


def _issue(app: State, client_id: str, secret: str) -> tuple[str, int]:
    with app.pool.connection() as conn:
        return clients.issue_token(conn, client_id, secret, app.cfg.api_token_minutes)


def _basic(request: Request) -> tuple[str, str] | None:
    """(client id, secret) of an `Authorization: Basic` header, each form-urlencoded (RFC 6749 2.3.1)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    return unquote_plus(client_id), unquote_plus(secret)


def _invalid() -> JSONResponse:
    return JSONResponse({"error": "invalid_client"}, status_code=401, headers={"WWW-Authenticate": "Basic"})


@router.post("/oauth2/client/token")
async def token(request: Request, app: AppState):
    if request.headers.get("content-type", "").lower().startswith("application/json"):
        form = await json_body(request)
    else:
        form = dict(await request.form())
    if not isinstance(form, dict) or form.get("grant_type") != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    client_id, secret = _basic(request) or (
        str(form.get("client_id", "")),
        str(form.get("client_secret", "")),
    )
    source = f"token:{request.client.host if request.client else '-'}"
    tries = app.cfg.api_token_tries_per_minute
    if wait := app.limits.take(source, tries):
        raise too_many(wait, "this address")
    limiter = _HASHING.setdefault("scrypt", anyio.CapacityLimiter(2))
    try:  # the secret's hash is checked on a worker thread: it is slow on purpose
        issued, seconds = await anyio.to_thread.run_sync(_issue, app, client_id, secret, limiter=limiter)
    except clients.InvalidClient:
        return _invalid()
    app.limits.give_back(source, tries)  # only failures count
    return JSONResponse(
        {"access_token": issued, "token_type": "bearer", "expires_in": seconds},
        headers={"Cache-Control": "no-store"},
    )
