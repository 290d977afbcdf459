"""The cockpit under attack (issue 24: OWASP API5, broken function-level authorization, and injection):

- an Airflow user whose role may not read dtsen_update_round's runs is refused every cockpit route (the
  JSON API and the pages, by bearer token and by the UI's `_token` cookie) by a real api-server with the
  plugin loaded, as Airflow's own API refuses it the runs; a Viewer, the least role that may, reads them.
  Under SimpleAuthManager (the auth manager of every deployment here) all four roles, viewer, user, op
  and admin, may read DAG runs; the one it refuses is a user configured without a role;
- HTML in the values outsiders put into what the cockpit shows (a landing folder's name, the data-entry
  account a manifest names, a regency's name in the reference data, an approver's name and reason, a
  path segment) is shown as text, escaped, on every page that shows it: never a tag of the page.
"""

from __future__ import annotations

import html
import json
import os
import shutil

import httpx
import markupsafe
import psycopg
import pytest

from dtsen.paths import SAMPLE_DIR
from dtsen.warehouse import engine
from tests.factories import airflow_beside_a_warehouse, airflow_token, run_steps

PASSWORD = "cockpit-hostile-password"
REGION = "3674"  # a sample regency with pemda submissions in every round


def hostile(field: str) -> str:
    """A value that runs script if a page puts it into its HTML unescaped, marked with its field."""
    return f"<img src=x onerror=alert({field!r})>'\"--"


def assert_shown_escaped(page: str, value: str, where: str) -> None:
    """`value` is on the page as text (escaped), and nowhere as markup."""
    assert value not in page, f"{where}: raw {value!r}"
    assert str(markupsafe.escape(value)) in page or html.escape(value) in page, (
        f"{where}: {value!r} not shown"
    )


# -- stored values: rendered in process, from a real warehouse after real rounds ---------------------


@pytest.fixture(scope="module")
def hostile_warehouse(module_warehouse, tmp_path_factory):
    """The sample's rounds 2026-Q1 and 2026-Q2 through the step list from a landing zone where a pemda
    folder is named with markup and 3674's manifest names a data-entry account with markup; then the
    regency's name in the reference, an approval of version 2 (approver and reason) and an integrity
    flag on that account hold markup too. Yields the two versions."""
    conn = module_warehouse
    work = tmp_path_factory.mktemp("cockpit-hostile")
    landing = work / "landing"
    shutil.copytree(SAMPLE_DIR / "landing", landing)
    (landing / "2026-Q1" / "pemda" / hostile("entry")).mkdir()  # refused: not a submission id
    manifest = landing / "2026-Q1" / "pemda" / f"{REGION}-2026Q1-01" / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"submitted_by": hostile("account")}))
    for round_id in ("2026-Q1", "2026-Q2"):
        run_steps(round_id, landing_root=landing, publish_root=work / "publish")
        conn.commit()
    (versions,) = conn.execute("SELECT array_agg(version ORDER BY version) FROM publish.version").fetchone()
    v1, v2 = versions
    (account,) = conn.execute(
        "SELECT submitted_by FROM ingest.submission WHERE submission_id = %s", (f"{REGION}-2026Q1-01",)
    ).fetchone()
    assert account == hostile("account")  # as the manifest named it
    with conn.transaction():
        conn.execute("UPDATE ref.kabupaten SET nama = %s WHERE kode = %s", (hostile("region"), REGION))
        conn.execute(
            "UPDATE publish.version SET approved_by = %s, approval_reason = %s, approved_at = now() "
            "WHERE version = %s",
            (hostile("approver"), hostile("reason"), v2),
        )
        conn.execute(
            "INSERT INTO publish.approval_decision (version, outcome, decided_by, channel, reason) "
            "VALUES (%s, 'APPROVED', %s, 'airflow-ui', %s)",
            (v2, hostile("approver"), hostile("reason")),
        )
        flag = {
            "scope": "ACCOUNT",
            "metric": "split",
            "key": account,
            "kode_kabupaten": REGION,
            "families": 7,
        }
        conn.execute(
            "UPDATE publish.version SET audit = jsonb_set(coalesce(audit, '{}'), '{integrity}', "
            "coalesce(audit -> 'integrity', '{}') || jsonb_build_object('splits', "
            "jsonb_build_object('flags', %s::jsonb))) WHERE version = %s",
            (json.dumps([flag]), v2),
        )
    conn.commit()  # the block above is a savepoint of the transaction the reads opened
    return v1, v2


def _cockpit():
    """The cockpit app mounted under /dtsen as Airflow's api-server mounts it, every route let through
    (the authorization is the other tests' subject)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from dtsen.cockpit.app import create_app

    server = FastAPI()
    server.mount("/dtsen", create_app(reader=lambda: "ops"))
    return TestClient(server)


def test_markup_in_stored_values_is_shown_escaped_on_every_cockpit_page_that_shows_it(
    hostile_warehouse, monkeypatch
):
    v1, v2 = hostile_warehouse
    monkeypatch.setenv("DTSEN_COCKPIT_DATABASE_URL", os.environ["DTSEN_DATABASE_URL"])
    shows = {  # page -> the hostile fields it shows
        "/dtsen/": (),
        "/dtsen/rounds/2026-Q1": ("entry", "region"),
        "/dtsen/rounds/2026-Q2": ("region",),
        f"/dtsen/regions/{REGION}": ("region",),
        "/dtsen/versions": ("approver",),
        f"/dtsen/versions/{v2}": ("region", "account", "approver", "reason"),
        f"/dtsen/compare?a={v1}&b={v2}": ("region",),
    }
    with _cockpit() as http:
        pages = {path: http.get(path) for path in shows}
    assert {path: a.status_code for path, a in pages.items()} == dict.fromkeys(shows, 200)
    for path, fields in shows.items():
        page = pages[path].text
        assert "<img" not in page, path  # no page of the cockpit has an image of its own
        for field in fields:
            assert_shown_escaped(page, hostile(field), path)


def test_markup_in_a_path_is_shown_escaped_on_the_page_that_says_it_is_not_there(
    hostile_warehouse, monkeypatch
):
    monkeypatch.setenv("DTSEN_COCKPIT_DATABASE_URL", os.environ["DTSEN_DATABASE_URL"])
    value = hostile("path")
    with _cockpit() as http:
        pages = {
            "region": http.get(f"/dtsen/regions/{value}"),
            "round": http.get(f"/dtsen/rounds/{value}"),
            "dag tab": http.get(f"/dtsen/dags/{value}"),
        }
    assert {name: a.status_code for name, a in pages.items()} == {"region": 404, "round": 404, "dag tab": 200}
    for name, answer in pages.items():
        assert answer.headers["content-type"].startswith("text/html"), name
        assert "<img" not in answer.text, name
        assert_shown_escaped(answer.text, value, name)


# -- who may read the cockpit: a real api-server with the plugin, Airflow's SimpleAuthManager ---------

ROUTE_VALUES = {  # a value for each path parameter of the cockpit's routes, on the sample's 2026-Q1
    "round_id": "2026-Q1",
    "kode": REGION,
    "submission_id": f"{REGION}-2026Q1-01",
    "dag_id": "dtsen_update_round",
    "run_id": "no-such-run",
    "model_version": 1,  # the configured model file, registered at 2026-Q1's candidate
}


@pytest.fixture(scope="module")
def airflow(scratch_database, tmp_path_factory):
    """An api-server with the cockpit over a warehouse after the sample's 2026-Q1: user `viewer` has
    the Viewer role, user `nobody` is configured without a role (SimpleAuthManager gives such a user
    no permission). Yields the base URL and every cockpit route, its path parameters filled in."""
    from fastapi.routing import APIRoute

    from dtsen.cockpit.app import create_app

    work = tmp_path_factory.mktemp("cockpit-roles")
    warehouse = scratch_database("cockpit_roles")
    users = {"viewer": ("viewer", PASSWORD), "nobody": ("", PASSWORD)}
    with airflow_beside_a_warehouse(work, warehouse, users, {}) as (base, _, _):
        with psycopg.connect(engine.libpq_conninfo(warehouse)) as conn:
            (version,) = conn.execute("SELECT max(version) FROM publish.version").fetchone()
        values = ROUTE_VALUES | {"version": version}
        routes = [
            "/dtsen" + r.path.format(**values) + (f"?a={version}&b={version}" if "compare" in r.path else "")
            for r in create_app().routes
            if isinstance(r, APIRoute)
        ]
        yield base, routes


def test_a_user_whose_role_may_not_read_the_dags_runs_is_refused_every_cockpit_route(airflow):
    base, routes = airflow
    token = airflow_token(base, "nobody", PASSWORD)
    # Airflow itself refuses this user the runs of the DAG the cockpit reports on ...
    runs = httpx.get(
        f"{base}/api/v2/dags/dtsen_update_round/dagRuns", headers={"Authorization": f"Bearer {token}"}
    )
    assert runs.status_code == 403
    # ... and so does every route of the cockpit, asked with the token or with the UI's cookie
    assert len(routes) >= 12 and any("/api/" in r for r in routes) and "/dtsen/" in routes
    for credentials in ({"Authorization": f"Bearer {token}"}, {"Cookie": f"_token={token}"}):
        answers = {r: httpx.get(f"{base}{r}", headers=credentials, timeout=60) for r in routes}
        assert {r: a.status_code for r, a in answers.items()} == dict.fromkeys(routes, 403), credentials
        for route, answer in answers.items():
            assert answer.json() == {"detail": "Forbidden"}, route  # nothing of the warehouse in it


def test_a_viewer_reads_every_cockpit_route(airflow):
    base, routes = airflow
    auth = {"Authorization": f"Bearer {airflow_token(base, 'viewer', PASSWORD)}"}
    runs = httpx.get(f"{base}/api/v2/dags/dtsen_update_round/dagRuns", headers=auth)
    assert runs.status_code == 200
    answers = {r: httpx.get(f"{base}{r}", headers=auth, timeout=60, follow_redirects=True) for r in routes}
    run_tab = "/dtsen/dags/dtsen_update_round/runs/no-such-run"
    assert {r: a.status_code for r, a in answers.items()} == dict.fromkeys(routes, 200) | {run_tab: 404}
    assert "no run no-such-run of dtsen_update_round" in answers[run_tab].text  # past the guard: no such run
    assert "2026-Q1" in answers["/dtsen/"].text
