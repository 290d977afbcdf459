"""What the registry API's routes depend on: the service's state (settings, disclosure key, signing
key, warehouse pool, rate limits), a warehouse connection, the authenticated caller with its scope, and
the request's envelope, its signature verified (`Body`)."""

import contextlib
import json
import math
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

import psycopg
from fastapi import Depends, HTTPException, Request

from dtsen.api import clients, dci, signing
from dtsen.config import Settings


class Pool:
    """A few warehouse connections shared by the request threads (each used by one at a time)."""

    def __init__(self, conninfo: str, size: int) -> None:
        self.conninfo, self._idle, self._lock, self._made, self.size = (
            conninfo,
            queue.LifoQueue(),
            threading.Lock(),
            0,
            size,
        )

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                make = self._made < self.size
                self._made += make
            conn = psycopg.connect(self.conninfo, application_name="dtsen-api") if make else self._idle.get()
        try:
            with conn.transaction():
                yield conn
        except BaseException:
            if conn.broken:
                with self._lock:
                    self._made -= 1
                conn = None
            raise
        finally:
            if conn is not None:
                self._idle.put(conn)


class RateLimit:
    """Token buckets in this process: `per_minute` units a minute per key, as many at once at most."""

    def __init__(self) -> None:
        self._lock, self._buckets = threading.Lock(), {}

    def give_back(self, key: str, per_minute: int, amount: float = 1.0) -> None:
        with self._lock:
            if key in self._buckets:
                level, at = self._buckets[key]
                self._buckets[key] = (min(float(per_minute), level + amount), at)

    def take(self, key: str, per_minute: int, cost: float = 1.0) -> float:
        """0 if `cost` units were taken; otherwise the seconds until they could be (nothing taken)."""
        now = time.monotonic()
        rate = per_minute / 60.0
        with self._lock:
            level, at = self._buckets.get(key, (float(per_minute), now))
            level = min(float(per_minute), level + (now - at) * rate)
            if level < cost:
                self._buckets[key] = (level, now)
                return (min(cost, float(per_minute)) - level) / rate
            self._buckets[key] = (level - cost, now)
            return 0.0


def fail(status: int, code: str, message: str, headers: dict | None = None) -> HTTPException:
    """An HTTP error answered in the DCI error shape (see app.py's handlers)."""
    return HTTPException(status, detail=dci.http_error(code, message), headers=headers)


def too_many(wait: float, what: str = "this client") -> HTTPException:
    return fail(
        429,
        "err.request.too_many_requests",
        f"too many requests for {what}: slow down",
        {"Retry-After": str(max(1, math.ceil(wait)))},
    )


@dataclass
class State:
    cfg: Settings
    key: bytes  # the disclosure log's key
    pool: Pool
    known_programs: frozenset[str]
    signer: signing.Signer  # the registry's own key: signs every answer (guards.SignResponses)
    limits: RateLimit = field(default_factory=RateLimit)


def state(request: Request) -> State:
    return request.app.state.dtsen


AppState = Annotated[State, Depends(state)]


def caller(request: Request, app: AppState) -> clients.Client:
    """The client whose bearer token came with the request (401 otherwise), within its rate (429)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    client = None
    if scheme.lower() == "bearer" and token:
        with app.pool.connection() as conn:
            client = clients.client_for_token(conn, token.strip())
    if client is None:
        raise fail(
            401,
            "err.request.unauthorized",
            "a valid bearer token is required (it may have expired or been revoked)",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if wait := app.limits.take(f"client:{client.client_id}", client.rate_per_minute):
        raise too_many(wait)
    return client


# evaluated here (no `from __future__ import annotations` in this module), so FastAPI sees the dependency
Caller = Annotated[clients.Client, Depends(caller)]


def version_of(conn: psycopg.Connection, wanted: object | None) -> int:
    """A published (or superseded) version: the current one if `wanted` is None; 404 if unknown."""
    if wanted is None:
        row = conn.execute("SELECT version FROM publish.current_version").fetchone()
        if row is None:
            raise fail(404, "err.request.not_found", "no version is published yet")
        return row[0]
    number = whole_number(wanted)
    if number is None:
        raise fail(400, "err.request.bad", "version is a whole number")
    found = conn.execute(
        "SELECT 1 FROM publish.version WHERE version = %s AND status IN ('PUBLISHED', 'SUPERSEDED')",
        (number,),
    ).fetchone()
    if not found:
        raise fail(404, "err.request.not_found", f"version {number} is not published")
    return number


_DIGITS = re.compile(r"[0-9]{1,9}")


def whole_number(value: object) -> int | None:
    """A JSON integer, or a string of ASCII digits only; None otherwise. Not int(str(value)), which
    takes Unicode digits, underscores and spaces (and raises with the value in its message)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def program_of(app: State, client: clients.Client, wanted: object | None) -> str:
    """A program of the client's scope: the only one if `wanted` is None; 404 unknown, 403 not its."""
    from dtsen.api import search

    if wanted is None:
        if len(client.programs) == 1:
            return client.programs[0]
        raise search.SearchError("rjct.search_criteria.invalid", "say which program: your scope has several")
    if not isinstance(wanted, str) or wanted not in app.known_programs:
        named = f" {wanted}" if isinstance(wanted, str) and len(wanted) <= 64 else ""
        raise fail(404, "err.request.not_found", f"there is no program{named}")
    if wanted not in client.programs:
        raise fail(403, "err.request.forbidden", f"program {wanted} is not in this client's scope")
    return wanted


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999: a valid JSON number that no float holds
        raise ValueError("a number too large for a float")
    return number


async def json_body(request: Request) -> object:
    """The request's JSON body (415 if it is not JSON, 400 if it does not parse, or if it holds
    NaN, Infinity, or a number no float holds: JSON has none of them, Python's parser takes them)."""
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        raise fail(415, "err.request.bad", "send the envelope as application/json")
    try:
        body = json.loads(await request.body(), parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError as exc:  # nested deeper than the parser goes
        raise fail(400, "err.request.bad", f"the body nests deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:
        raise fail(400, "err.request.bad", "the body is not valid JSON (no NaN or Infinity)") from exc
    if _depth(body) > MAX_DEPTH:
        raise fail(400, "err.request.bad", f"the body nests deeper than {MAX_DEPTH} levels")
    return body


MAX_DEPTH = 32  # a DCI envelope nests about 8 levels deep


def _depth(value: object) -> int:
    """How deep lists and objects nest in a parsed JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend(
                    (child, level + 1) for child in (node.values() if isinstance(node, dict) else node)
                )
    return deepest


def check_signature(app: State, client: clients.Client, body: object) -> None:
    """The envelope's `signature` (dtsen.api.signing), from a client with a registered key or from
    every client when DTSEN_API_REQUIRE_SIGNED_REQUESTS: 401 err.signature.missing without one, 401
    err.signature.invalid unless it verifies. A keyless client's signature cannot be verified: refused,
    rather than taken as if it had been."""
    envelope = body if isinstance(body, dict) else {}
    given, key = envelope.get("signature"), client.signing_public_key
    if given is None or given == "":
        if key is None and not app.cfg.api_require_signed_requests:
            return
        raise fail(401, signing.MISSING, "the envelope's signature is missing: sign the header and message")
    if key is None:
        raise fail(
            401,
            signing.INVALID,
            "this client has no registered key to verify its signature with: ask the registry's "
            "administrators to register your public key"
            + ("" if app.cfg.api_require_signed_requests else ", or send an empty signature"),
        )
    try:
        signing.verify(
            given,
            envelope.get("header"),
            envelope.get("message"),
            signing.public_key(key),
            sender_id=client.client_id,
            key_id=signing.key_id(key),
            max_age_seconds=app.cfg.api_signature_max_age_seconds,
        )
    except signing.SignatureError as exc:
        raise fail(401, exc.code, str(exc)) from exc


async def signed_body(request: Request, client: Caller, app: AppState) -> object:
    """The request's JSON body (json_body), its signature checked for the caller (check_signature)."""
    body = await json_body(request)
    check_signature(app, client, body)
    return body


# every envelope route takes its body through this: no route can forget the signature
Body = Annotated[object, Depends(signed_body)]
