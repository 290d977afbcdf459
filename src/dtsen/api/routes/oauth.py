"""OAuth2 client credentials: a bearer token for a client's id and secret."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dtsen.api import clients
from dtsen.api.deps import AppState, State, json_body

router = APIRouter()


def _issue(app: State, client_id: str, secret: str) -> tuple[str, int]:
    with app.pool.connection() as conn:
        return clients.issue_token(conn, client_id, secret, app.cfg.api_token_minutes)


@router.post("/oauth2/client/token")
async def token(request: Request, app: AppState):
    if request.headers.get("content-type", "").lower().startswith("application/json"):
        form = await json_body(request)
    else:
        form = dict(await request.form())
    if not isinstance(form, dict) or form.get("grant_type") != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    try:  # the secret's hash is checked on a worker thread: it is slow on purpose
        issued, seconds = await run_in_threadpool(
            _issue, app, str(form.get("client_id", "")), str(form.get("client_secret", ""))
        )
    except clients.InvalidClient:
        return JSONResponse(
            {"error": "invalid_client"}, status_code=401, headers={"WWW-Authenticate": "Basic"}
        )
    return JSONResponse(
        {"access_token": issued, "token_type": "bearer", "expires_in": seconds},
        headers={"Cache-Control": "no-store"},
    )
