"""The registry API service (`dtsen api`): program teams' systems take their recipients from the
published versions, each within its scope, every disclosure logged. See docs/registry-api.md.

`create_app` makes the service's state (dtsen.api.deps.State), answers every error in the DCI error
shape (dtsen.api.dci.http_error), signs every DCI envelope it answers with the registry's key
(dtsen.api.signing, guards.SignResponses), and mounts one router per resource (dtsen.api.routes)."""

import asyncio
import contextlib

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from dtsen import http_security
from dtsen.api import callbacks, dci, openapi
from dtsen.api.deps import Pool, State
from dtsen.api.guards import BodyLimit, Unexpected
from dtsen.config import Settings, settings
from dtsen.errors import DataError

_CODES = {401: "err.request.unauthorized", 403: "err.request.forbidden", 404: "err.request.not_found"}


async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    """Ours carry a DCI error body; Starlette's own (an unknown route, a method not allowed) get one."""
    body = (
        exc.detail
        if isinstance(exc.detail, dict)
        else dci.http_error(_CODES.get(exc.status_code, "err.request.bad"), str(exc.detail))
    )
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """A path or query parameter of the wrong type: where and what, never the value sent."""
    error = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in error.get("loc", ()))
    return JSONResponse(dci.http_error("err.request.bad", f"{where}: {error.get('msg')}"), status_code=400)


@contextlib.asynccontextmanager
async def _callbacks_retried(app: FastAPI):
    """While the API runs, asynchronous answers not delivered yet are tried again when due."""
    retrying = asyncio.create_task(callbacks.retry_loop(app.state.dtsen))
    try:
        yield
    finally:
        retrying.cancel()


def create_app(cfg: Settings | None = None) -> FastAPI:
    from dtsen.api.guards import SignResponses
    from dtsen.api.signing import Signer
    from dtsen.programs import load_programs
    from dtsen.warehouse import engine

    cfg = cfg or settings()
    if not cfg.api_disclosure_key:
        raise DataError("DTSEN_API_DISCLOSURE_KEY is not set: the API logs every disclosure under that key")
    app = FastAPI(
        title="DTSEN registry API",
        version="1.0.0",
        # the contract is behind a token (GET /registry/openapi.json) and in docs/: not open to all
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=_callbacks_retried,
    )
    http_security.install(app)  # CSP, nosniff, no framing, no-store on every answer (issue 24, item 9)
    app.state.dtsen = State(
        cfg=cfg,
        key=cfg.api_disclosure_key.encode(),
        pool=Pool(engine.libpq_conninfo(engine.database_url("api")), size=8),  # the dtsen_api role's login
        known_programs=frozenset(p.id for p in load_programs(cfg.programs_path).programs),
        # the registry's own key (DTSEN_API_SIGNING_KEY; DataError if unset or not a key)
        signer=Signer(cfg.api_signing_key, cfg.api_signature_max_age_seconds),
    )
    # innermost: signs each answer as its route made it
    app.add_middleware(SignResponses, signer=app.state.dtsen.signer)
    app.add_middleware(BodyLimit, max_bytes=cfg.api_max_body_bytes)
    app.add_middleware(Unexpected)  # added last: outermost, around BodyLimit too
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for router in openapi.routers():
        app.include_router(router)
    return app
