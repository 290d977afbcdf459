"""The registry API service (`dtsen api`): program teams' systems take their recipients from the
published versions, each within its scope, every disclosure logged. See docs/registry-api.md."""

import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from dtsen import http_security
from dtsen.api import clients, dci, disclosure, search, subscriptions
from dtsen.config import Settings, settings
from dtsen.errors import DataError


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
    """Requests per minute per client, as a token bucket in this process."""

    def __init__(self) -> None:
        self._lock, self._buckets = threading.Lock(), {}

    def allow(self, client: clients.Client) -> bool:
        now = time.monotonic()
        rate = client.rate_per_minute / 60.0
        with self._lock:
            level, at = self._buckets.get(client.client_id, (float(client.rate_per_minute), now))
            level = min(float(client.rate_per_minute), level + (now - at) * rate)
            if level < 1:
                self._buckets[client.client_id] = (level, now)
                return False
            self._buckets[client.client_id] = (level - 1, now)
            return True


def _fail(status: int, code: str, message: str, headers: dict | None = None) -> HTTPException:
    return HTTPException(status, detail=dci.http_error(code, message), headers=headers)


def create_app(cfg: Settings | None = None) -> FastAPI:
    from dtsen.warehouse import engine

    cfg = cfg or settings()
    if not cfg.api_disclosure_key:
        raise DataError("DTSEN_API_DISCLOSURE_KEY is not set: the API logs every disclosure under that key")
    key = cfg.api_disclosure_key.encode()
    pool = Pool(engine.libpq_conninfo(engine.database_url("api")), size=8)  # the dtsen_api role's login
    from dtsen.programs import load_programs

    known_programs = {p.id for p in load_programs(cfg.programs_path).programs}
    limits = RateLimit()
    app = FastAPI(title="DTSEN registry API", version="1.0.0", docs_url=None, redoc_url=None)
    http_security.install(app)  # CSP, nosniff, no framing, no-store on every answer (issue 24, item 9)

    @app.exception_handler(HTTPException)
    async def http_errors(_request: Request, exc: HTTPException):
        body = (
            exc.detail if isinstance(exc.detail, dict) else dci.http_error("err.request.bad", str(exc.detail))
        )
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    def caller(request: Request) -> clients.Client:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        client = None
        if scheme.lower() == "bearer" and token:
            with pool.connection() as conn:
                client = clients.client_for_token(conn, token.strip())
        if client is None:
            raise _fail(
                401,
                "err.request.unauthorized",
                "a valid bearer token is required (it may have expired or been revoked)",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if not limits.allow(client):
            raise _fail(
                429,
                "err.request.too_many_requests",
                "too many requests for this client: slow down",
                {"Retry-After": "1"},
            )
        return client

    async def json_body(request: Request) -> object:
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            raise _fail(415, "err.request.bad", "send the envelope as application/json")
        try:
            return json.loads(await request.body())
        except ValueError as exc:
            raise _fail(400, "err.request.bad", "the body is not valid JSON") from exc

    # evaluated here (no `from __future__ import annotations` in this module), so FastAPI sees the dependency
    Caller = Annotated[clients.Client, Depends(caller)]

    def _issue(client_id: str, secret: str) -> tuple[str, int]:
        with pool.connection() as conn:
            return clients.issue_token(conn, client_id, secret, cfg.api_token_minutes)

    @app.post("/oauth2/client/token")
    async def token(request: Request):
        if request.headers.get("content-type", "").lower().startswith("application/json"):
            form = await json_body(request)
        else:
            form = dict(await request.form())
        if not isinstance(form, dict) or form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        try:  # the secret's hash is checked on a worker thread: it is slow on purpose
            issued, seconds = await run_in_threadpool(
                _issue, str(form.get("client_id", "")), str(form.get("client_secret", ""))
            )
        except clients.InvalidClient:
            return JSONResponse(
                {"error": "invalid_client"}, status_code=401, headers={"WWW-Authenticate": "Basic"}
            )
        return JSONResponse(
            {"access_token": issued, "token_type": "bearer", "expires_in": seconds},
            headers={"Cache-Control": "no-store"},
        )

    def _version(conn: psycopg.Connection, wanted: object | None) -> int:
        if wanted is None:
            row = conn.execute("SELECT version FROM publish.current_version").fetchone()
            if row is None:
                raise _fail(404, "err.request.not_found", "no version is published yet")
            return row[0]
        try:
            number = int(str(wanted))
        except ValueError as exc:
            raise _fail(400, "err.request.bad", "version is a whole number") from exc
        found = conn.execute(
            "SELECT 1 FROM publish.version WHERE version = %s AND status IN ('PUBLISHED', 'SUPERSEDED')",
            (number,),
        ).fetchone()
        if not found:
            raise _fail(404, "err.request.not_found", f"version {number} is not published")
        return number

    def _program(client: clients.Client, wanted: object | None) -> str:
        if wanted is None:
            if len(client.programs) == 1:
                return client.programs[0]
            raise search.SearchError(
                "rjct.search_criteria.invalid", "say which program: your scope has several"
            )
        if str(wanted) not in known_programs:
            raise _fail(404, "err.request.not_found", f"there is no program {wanted}")
        if str(wanted) not in client.programs:
            raise _fail(403, "err.request.forbidden", f"program {wanted} is not in this client's scope")
        return str(wanted)

    def _search_item(conn, client: clients.Client, item: dict, audit: list) -> dict:
        reference = item["reference_id"]
        criteria = item.get("search_criteria")
        if not isinstance(criteria, dict):
            return dci.rejected(reference, "rjct.search_criteria.invalid", "search_criteria is required")
        paging = criteria.get("pagination") or {}
        try:
            size = int(paging.get("page_size", cfg.api_max_page_size))
            number = int(paging.get("page_number", 1))
        except (TypeError, ValueError):
            size = number = 0
        if size > cfg.api_max_page_size:  # asking for more than the server serves is a bad request
            raise _fail(400, "err.request.bad", f"page_size is at most {cfg.api_max_page_size}")
        if size < 1 or number < 1:
            return dci.rejected(
                reference,
                "rjct.pagination.invalid",
                f"page_size is 1 to {cfg.api_max_page_size} and page_number starts at 1",
            )
        try:
            kind = criteria.get("query_type")
            if kind == "predicate":
                predicates = search.parse_predicate(criteria.get("query"))
                version = _version(conn, search.single(predicates, "version"))
                program = _program(client, search.single(predicates, "program"))
                found = search.page(
                    conn,
                    search.Search(version, program, **search.filters(predicates)),
                    number,
                    size,
                    client.fields,
                )
                records, total, niks = found.rows, found.total, list(found.niks)
                logged = {
                    "query_type": kind,
                    "query": criteria.get("query"),
                    "page_number": number,
                    "page_size": size,
                }
            elif kind == "idtype-value":
                query = criteria.get("query") or {}
                nik = str(query.get("value", "")) if isinstance(query, dict) else ""
                if not (
                    isinstance(query, dict)
                    and query.get("type") == "NIK"
                    and nik.isdigit()
                    and len(nik) == 16
                ):
                    raise search.SearchError(
                        "rjct.search_criteria.invalid",
                        'idtype-value takes {"type": "NIK", "value": "<16 digits>"}',
                    )
                version = _version(conn, None)
                records = search.person(conn, version, client.programs, int(nik), client.fields)
                niks = [r.pop("_nik") for r in records]
                total, program = len(records), ",".join(sorted({r["program"] for r in records}))
                logged = {
                    "query_type": kind,
                    "query": {"type": "NIK", "value_key": disclosure.person_key(nik, key).hex()},
                }
            else:
                raise search.SearchError(
                    "rjct.search_criteria.invalid", "query_type is predicate or idtype-value"
                )
        except search.SearchError as exc:
            return dci.rejected(reference, exc.code, str(exc))
        if records:
            audit.append((logged | {"reference_id": reference}, version, program, niks))
        return {
            "reference_id": reference,
            "timestamp": dci.now(),
            "status": "succ",
            "data": {
                "version": "1.0.0",
                "reg_type": dci.REGISTRY_TYPE,
                "reg_record_type": dci.RECORD_TYPE,
                "reg_records": records,
                "dtsen_version": version,
            },
            "pagination": {"page_size": size, "page_number": number, "total_count": total},
            "locale": item.get("locale") or "ind",
        }

    @app.post("/registry/sync/search")
    async def sync_search(request: Request, client: Caller):
        body = await json_body(request)
        try:
            header, message, items = dci.check_request(body, "search", "search_request")
        except dci.EnvelopeError as exc:
            raise _fail(400, exc.code, str(exc)) from exc
        # the warehouse is read on a worker thread: on the event loop, one slow page would hold up
        # every other request of this process
        return await run_in_threadpool(_answer_search, client, header, message, items)

    def _answer_search(client, header, message, items) -> JSONResponse:
        audit: list = []
        with pool.connection() as conn:
            answers = [_search_item(conn, client, item, audit) for item in items]
            for logged, version, program, niks in audit:
                # every person whose record went out, whichever of their fields the scope gives
                disclosure.record_search(conn, client.client_id, logged, version, program, niks, key)
        done = sum(1 for a in answers if a["status"] == "succ")
        return JSONResponse(
            {
                "signature": "",
                "header": dci.answer_header(
                    header,
                    "on-search",
                    "succ" if done else "rjct",  # per item: search_response[].status
                    len(answers),
                    len(answers),
                ),
                "message": {
                    "transaction_id": message["transaction_id"],
                    "correlation_id": dci.now(),
                    "search_response": answers,
                },
            }
        )

    @app.post("/registry/subscribe")
    async def subscribe(request: Request, client: Caller):
        """DCI subscribe, answered synchronously (a deviation: DCI acks, then calls back on-subscribe):
        each item subscribes header.sender_uri to `dtsen:VersionPublished` of the client's programs."""
        body = await json_body(request)
        try:
            header, message, items = dci.check_request(body, "subscribe", "subscribe_request")
            # the callback rules (dtsen.notify.egress); it resolves the host, so off the event loop
            callback = await run_in_threadpool(
                subscriptions.check_callback, str(header.get("sender_uri") or "")
            )
        except (dci.EnvelopeError, DataError) as exc:
            raise _fail(400, getattr(exc, "code", "err.sender_uri.invalid"), str(exc)) from exc
        try:
            answers = await run_in_threadpool(_subscribe_items, client, items, callback)
        except subscriptions.SubscriptionLimit as exc:  # nothing of the request was subscribed
            raise _fail(403, "err.subscription.limit", str(exc)) from exc
        return {
            "signature": "",
            "header": dci.answer_header(header, "on-subscribe", "succ", len(answers), len(answers)),
            "message": {
                "transaction_id": message["transaction_id"],
                "correlation_id": dci.now(),
                "subscribe_response": answers,
            },
        }

    def _subscribe_items(client: clients.Client, items: list, callback: str) -> list:
        answers = []
        with pool.connection() as conn:
            for item in items:
                criteria = item.get("subscribe_criteria") or {}
                if criteria.get("reg_event_type") != dci.VERSION_EVENT:
                    answers.append(
                        dci.rejected(
                            item["reference_id"],
                            "rjct.notify_types.invalid",
                            f"reg_event_type is {dci.VERSION_EVENT}",
                        )
                    )
                    continue
                wanted = (
                    (criteria.get("filter") or {}).get("program")
                    if isinstance(criteria.get("filter"), dict)
                    else None
                )
                programs = [_program(client, wanted)] if wanted else list(client.programs)
                made = subscriptions.subscribe(conn, client.client_id, programs, callback)
                answers.append(
                    {
                        "reference_id": item["reference_id"],
                        "timestamp": dci.now(),
                        "status": "succ",
                        "subscriptions": [
                            {
                                "code": m.code,
                                "status": "subscribe",
                                "timestamp": dci.now(),
                                "reg_type": dci.REGISTRY_TYPE,
                                "reg_event_type": dci.VERSION_EVENT,
                                "notify_record_type": m.program,
                                "secret": subscriptions.secret_of(m.code, key).decode(),  # shown once
                            }
                            for m in made
                        ],
                    }
                )
        return answers

    @app.post("/registry/unsubscribe")
    async def unsubscribe(request: Request, client: Caller):
        body = await json_body(request)
        try:
            header, message = dci.check_envelope(body, "unsubscribe")
            codes = message.get("subscription_codes")
            if (
                not isinstance(codes, list)
                or not codes
                or not all(isinstance(c, str) and len(c) <= 99 for c in codes)
            ):
                raise dci.EnvelopeError("message.subscription_codes must be a non-empty list of codes")
        except dci.EnvelopeError as exc:
            raise _fail(400, exc.code, str(exc)) from exc
        ended = await run_in_threadpool(_unsubscribe, client, codes)
        known = all(v != "unknown" for v in ended.values())
        return {
            "signature": "",
            "header": dci.answer_header(header, "on-unsubscribe", "succ" if known else "rjct", 1, 1),
            "message": {
                "transaction_id": message["transaction_id"],
                "correlation_id": dci.now(),
                "timestamp": dci.now(),
                "status": "succ" if known else "rjct",
                **({} if known else {"status_reason_code": "rjct.subscription_code.invalid"}),
                "subscription_status": [
                    {"code": c, "status": "unsubscribe"} for c, state in ended.items() if state != "unknown"
                ],
            },
        }

    def _unsubscribe(client: clients.Client, codes: list[str]) -> dict:
        with pool.connection() as conn:
            return subscriptions.unsubscribe(conn, client.client_id, codes)

    @app.get("/registry/versions")
    def versions(client: Caller):
        with pool.connection() as conn:
            rows = conn.execute(
                "SELECT version, published_at FROM publish.version WHERE status IN ('PUBLISHED', 'SUPERSEDED') ORDER BY version"
            ).fetchall()
        return [
            {"version": v, "published_at": p.isoformat(timespec="seconds") if p else None} for v, p in rows
        ]

    @app.get("/registry/versions/{version}/manifest")
    def manifest(version: int, client: Caller):
        with pool.connection() as conn:
            number = _version(conn, version)
            document = conn.execute(
                "SELECT manifest FROM publish.version WHERE version = %s", (number,)
            ).fetchone()[0]
        mine = {k: v for k, v in (document.get("programs") or {}).items() if k in client.programs}
        files = {
            k: v
            for k, v in (document.get("files") or {}).items()
            if not k.startswith("programs/") or Path(k).stem in client.programs
        }
        return document | {"programs": mine, "files": files}

    @app.get("/registry/versions/{version}/programs/{name}")
    def program_file(version: int, name: str, request: Request, client: Caller):
        program = _program(client, name.removesuffix(".parquet"))
        with pool.connection() as conn:
            number = _version(conn, version)
            document, folder = conn.execute(
                "SELECT manifest, path FROM publish.version WHERE version = %s", (number,)
            ).fetchone()
            digest = (document.get("files") or {}).get(f"programs/{program}.parquet")
            records = ((document.get("programs") or {}).get(program) or {}).get("recipients", 0)
            path = Path(folder) / "programs" / f"{program}.parquet"
            if digest is None or not path.exists():
                raise _fail(
                    404, "err.request.not_found", f"version {number} has no file for program {program}"
                )
            disclosure.record_file(
                conn, client.client_id, {"path": request.url.path}, number, program, records, digest
            )
        import base64

        def chunks():
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    yield block

        return StreamingResponse(
            chunks(),
            media_type="application/vnd.apache.parquet",
            headers={
                "Digest": "sha-256=" + base64.b64encode(bytes.fromhex(digest)).decode(),
                "X-Content-SHA256": digest,
                "Content-Length": str(path.stat().st_size),
            },
        )

    return app
