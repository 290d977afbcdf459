"""The cockpit as a FastAPI app, mounted in Airflow's api-server by plugins/dtsen_cockpit.py.

A plugin app is not behind Airflow's authentication by itself: every route here depends on
`cockpit_reader`, which takes the caller's Airflow token (the UI's `_token` cookie inside the iframe,
or an `Authorization: Bearer` header) through `airflow.api_fastapi.core_api.security.get_user`, and
asks Airflow's auth manager whether that user may read the runs of dtsen_update_round (the same
permission that shows the round in the Airflow UI). No token, or one that is not valid: the JSON API
(`/api/...`) answers 401, a page sends the person to Airflow's login (`api/v2/auth/login?next=`, which
the installed auth manager answers with its own login page, as the Airflow UI itself does); a user who
may not read the DAG's runs: 403.

Pages are server-rendered HTML (Jinja), with relative links under a `<base>` taken from the mount
point, so they work inside the UI's iframe and behind a base URL. `/api/...` answers the same data as
JSON. All of it is aggregates: no NIK, no name, no row of the registry.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dtsen import http_security
from dtsen.cockpit import data
from dtsen.cockpit.charts import line_chart

DAG_ID = "dtsen_update_round"
NOTIFY_DAG_ID = "dtsen_notify_programs"
_bearer = HTTPBearer(auto_error=False)


async def cockpit_reader(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
):
    """Airflow's own authentication and authorization for every cockpit route."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag

    try:
        user = await get_user(request, None, bearer)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_403_FORBIDDEN:  # a token that does not verify is no credential
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "Not authenticated", headers={"WWW-Authenticate": "Bearer"}
            ) from exc
        raise
    requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID)(request, user)
    return user


def _templates():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dtsen.cockpit", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.globals["pct"] = lambda share: "-" if share is None else f"{share:.1%}"
    env.globals["num"] = lambda n: "-" if n is None else f"{n:,}"
    env.globals["fmt"] = lambda v: f"{v:.4g}" if isinstance(v, float) else v
    return env


def page_policy(templates) -> str:
    """The cockpit's Content-Security-Policy: its pages are server-rendered HTML with one inline
    <style> block (allowed by its hash, so no injected style or script runs), inline SVG charts, links
    and a GET form; no script, image, font or frame of their own. The Airflow UI shows them in an
    iframe of the same origin."""
    source = templates.loader.get_source(templates, "base.html")[0]
    (style,) = re.findall(r"<style>(.*?)</style>", source, flags=re.S)
    if "{{" in style or "{%" in style:  # rendered text must equal the template's for the hash to hold
        raise ValueError("base.html's <style> block must be static")
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; base-uri 'self'; "
        "frame-ancestors 'self'"
    )


def _airflow_base(request: Request) -> str:
    """The Airflow UI's root as seen from this app (the mount point's parent)."""
    root = request.scope.get("root_path", "").rstrip("/")
    return root.rsplit("/", 1)[0] if "/" in root else ""


def create_app(reader=cockpit_reader) -> FastAPI:
    """`reader`: the dependency that guards every route (Airflow's, unless a benchmark swaps it)."""
    app = FastAPI(
        title="DTSEN cockpit",
        dependencies=[Depends(reader)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    templates = _templates()
    # framed by the Airflow UI (same origin); styles only from base.html's own <style> block
    http_security.install(app, policy=page_policy(templates), frame_options="SAMEORIGIN")

    def page(request: Request, name: str, title: str, **values) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/")
        html = templates.get_template(name).render(base=base, title=title, **values)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def is_api(request: Request) -> bool:
        return request.url.path.startswith(f"{request.scope.get('root_path', '').rstrip('/')}/api/")

    @app.exception_handler(HTTPException)
    async def not_logged_in(request: Request, exc: HTTPException):
        """A page asked without a valid login goes to Airflow's login, and comes back after it."""
        if exc.status_code != status.HTTP_401_UNAUTHORIZED or is_api(request):
            return await http_exception_handler(request, exc)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"{_airflow_base(request)}/api/v2/auth/login?{urlencode({'next': here})}"
        return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)

    @app.exception_handler(data.NotFound)
    async def not_found(request: Request, exc: data.NotFound):
        if is_api(request):
            return JSONResponse({"detail": str(exc)}, status_code=404)
        shown = page(request, "error.html", "Not found", message=str(exc))
        shown.status_code = 404
        return shown

    # -- JSON ---------------------------------------------------------------------------------------
    @app.get("/api/rounds")
    def api_rounds() -> list[dict]:
        return _read(data.rounds)

    @app.get("/api/rounds/{round_id}")
    def api_round(round_id: str) -> dict:
        return _read(data.round_detail, round_id)

    @app.get("/api/regions/{kode}")
    def api_region(kode: str) -> dict:
        return _read(data.region_trend, kode)

    @app.get("/api/versions")
    def api_versions() -> list[dict]:
        return _read(data.versions)

    @app.get("/api/versions/{version}")
    def api_version(version: int) -> dict:
        return _read(data.version_detail, version)

    @app.get("/api/compare")
    def api_compare(a: int, b: int) -> dict:
        return _read(data.compare, a, b)

    @app.get("/api/cases")
    def api_cases() -> dict:
        from dtsen.cases.work import today

        return _read(data.cases, today())

    @app.get("/api/models")
    def api_models() -> list[dict]:
        return _read(data.models)

    @app.get("/api/models/{model_version}")
    def api_model(model_version: int) -> dict:
        return _read(data.model_detail, model_version)

    # -- pages --------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def rounds_page(request: Request):
        with data.reading() as conn:
            rounds = data.rounds(conn)
            blocked = [v for v in data.versions(conn) if v["status"] == "BLOCKED"]
        return page(request, "rounds.html", "Rounds", rounds=rounds, blocked=blocked)

    @app.get("/rounds/{round_id}", response_class=HTMLResponse)
    def round_page(request: Request, round_id: str):
        with data.reading() as conn:
            detail = data.round_detail(conn, round_id)
        return page(request, "round.html", f"Round {round_id}", d=detail, run_id=None)

    @app.get("/dags/{dag_id}/runs/{run_id}", response_class=HTMLResponse)
    def run_tab(request: Request, dag_id: str, run_id: str):
        """The DAG run tab: the round a run of dtsen_update_round worked on; the version a run of
        dtsen_notify_programs announced."""
        root = request.scope.get("root_path", "").rstrip("/")
        if dag_id == NOTIFY_DAG_ID:
            version = _version_of_notify_run(run_id)
            return RedirectResponse(f"{root}/versions/{version}" if version else f"{root}/versions")
        if dag_id != DAG_ID:
            return no_tab(request, dag_id)
        round_id = _round_of_run(run_id)
        with data.reading() as conn:
            detail = data.round_detail(conn, round_id)
        return page(request, "round.html", f"Round {round_id}", d=detail, run_id=run_id)

    @app.get("/rounds/{round_id}/ringkasan/{submission_id}.json")
    def ringkasan(round_id: str, submission_id: str) -> JSONResponse:
        with data.reading() as conn:
            return JSONResponse(data.ringkasan(conn, round_id, submission_id))

    @app.get("/regions/{kode}", response_class=HTMLResponse)
    def region_page(request: Request, kode: str):
        with data.reading() as conn:
            detail = data.region_trend(conn, kode)
        points = detail["rounds"]
        return page(
            request,
            "region.html",
            f"Region {kode}",
            d=detail,
            chart_rejected=line_chart(
                [(p["round_id"], p["rejected_share"]) for p in points],
                label=f"rejected share of rows, region {kode}",
                percent=True,
            ),
            chart_received=line_chart(
                [(p["round_id"], p["received"]) for p in points], label=f"rows received, region {kode}"
            ),
        )

    @app.get("/versions", response_class=HTMLResponse)
    def versions_page(request: Request):
        with data.reading() as conn:
            versions = data.versions(conn)
        programs = sorted({p["program"] for v in versions for p in v["programs"]})
        return page(request, "versions.html", "Versions", versions=versions, programs=programs)

    @app.get("/versions/{version}", response_class=HTMLResponse)
    def version_page(request: Request, version: int):
        with data.reading() as conn:
            detail = data.version_detail(conn, version)
        base = _airflow_base(request)
        return page(
            request,
            "version.html",
            f"Version {version}",
            d=detail,
            required_actions=f"{base}/dags/{DAG_ID}/required_actions",
        )

    @app.get("/compare", response_class=HTMLResponse)
    def compare_page(request: Request, a: int | None = None, b: int | None = None):
        with data.reading() as conn:
            versions = data.versions(conn)
            if a is None or b is None:
                if len(versions) < 2:
                    return page(request, "compare.html", "Compare versions", versions=versions, d=None)
                a, b = versions[1]["version"], versions[0]["version"]
            detail = data.compare(conn, a, b)
        return page(request, "compare.html", "Compare versions", versions=versions, d=detail)

    @app.get("/cases", response_class=HTMLResponse)
    def cases_page(request: Request):
        """Verification cases per regency, origin and round (counts; the cases themselves: `dtsen cases`)."""
        from dtsen.cases.work import today

        with data.reading() as conn:
            overview = data.cases(conn, today())
        return page(request, "cases.html", "Cases", c=overview)

    @app.get("/models", response_class=HTMLResponse)
    def models_page(request: Request):
        with data.reading() as conn:
            models = data.models(conn)
        return page(request, "models.html", "Models", models=models, cutoff=data.LIST_CUTOFF)

    @app.get("/models/{model_version}", response_class=HTMLResponse)
    def model_page(request: Request, model_version: int):
        """A model and its card; the page the adoption question of dtsen_ranking_model links to."""
        with data.reading() as conn:
            detail = data.model_detail(conn, model_version)
        return page(request, "model.html", f"Model {model_version}", d=detail)

    @app.get("/dags/{dag_id}", response_class=HTMLResponse)
    def dag_tab(request: Request, dag_id: str):
        """The tab on a DAG (Airflow shows it on every DAG): the rounds overview on dtsen_update_round,
        the versions (what dtsen_notify_programs announces) on dtsen_notify_programs."""
        root = request.scope.get("root_path", "").rstrip("/")
        if dag_id == DAG_ID:
            return RedirectResponse(f"{root}/")
        if dag_id == NOTIFY_DAG_ID:
            return RedirectResponse(f"{root}/versions")
        return no_tab(request, dag_id)

    def no_tab(request: Request, dag_id: str) -> HTMLResponse:
        return page(
            request,
            "error.html",
            "Nothing for this DAG",
            message=f"DTSEN shows rounds for {DAG_ID} and versions for {NOTIFY_DAG_ID}; {dag_id} is neither.",
        )

    return app


def _read(query, *args):
    """One cockpit query in its own read-only session."""
    with data.reading() as conn:
        return query(conn, *args)


def _version_of_notify_run(run_id: str) -> int | None:
    """The version a run of dtsen_notify_programs announces: its trigger form, else the publication
    (asset event) that started it; None when neither says (it then announces the newest)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).filter_by(dag_id=NOTIFY_DAG_ID, run_id=run_id))
        if run is None:
            raise data.NotFound(f"no run {run_id} of {NOTIFY_DAG_ID}")
        version = (run.conf or {}).get("version")
        if version is None:
            events = sorted(run.consumed_asset_events, key=lambda e: e.timestamp)
            version = next((e.extra.get("version") for e in reversed(events) if e.extra), None)
    return int(version) if version is not None else None


def _round_of_run(run_id: str) -> str:
    """The round a run of dtsen_update_round worked on: its trigger form, else its logical date."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from dtsen.airflow_support import round_for

    with create_session() as session:
        run = session.scalar(select(DagRun).filter_by(dag_id=DAG_ID, run_id=run_id))
        if run is None:
            raise data.NotFound(f"no run {run_id} of {DAG_ID}")
        conf = run.conf or {}
        when = run.logical_date or run.run_after
    return conf.get("round_id") or round_for(when)
