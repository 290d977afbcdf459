"""The cockpit's verification cases (issue 26, item 5): `/cases` and `/api/cases` count the cases per
regency (live by state, overdue, expired, resolved, age), per origin (with the share of closed cases a
visit upheld) and per round, number for number as the warehouse holds them, with no family's key;
without a login the page goes to Airflow's login and the API answers 401. Rendered in process over a
real warehouse after the sample's rounds, stale cases due the day after their round (so 2026-Q3
expires 2026-Q2's) and the sample's own Kemensos results resolving some."""

from __future__ import annotations

import datetime as dt
import json
import os
import re

import pytest

from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from tests.factories import run_steps

LIVE = ("OPEN", "ASSIGNED", "VISITED")


def _cockpit(reader=lambda: "ops"):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from dtsen.cockpit.app import create_app

    server = FastAPI()
    server.mount("/dtsen", create_app() if reader is None else create_app(reader=reader))
    return TestClient(server)


@pytest.fixture(scope="module")
def cases(module_warehouse, tmp_path_factory):
    work = tmp_path_factory.mktemp("cockpit-cases")
    config = json.loads((PROJECT_ROOT / "config" / "cases.json").read_text())
    config["origins"]["stale"] |= {"rounds": 1, "max_per_round": 0, "due_days": 1}
    (work / "cases.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_CASES_CONFIG", str(work / "cases.json"))
        env.setenv("DTSEN_OUTBOX", str(work / "outbox"))
        for round_id in ("2026-Q1", "2026-Q2", "2026-Q3"):
            run_steps(round_id, landing_root=SAMPLE_DIR / "landing", publish_root=work / "publish")
    module_warehouse.commit()
    return module_warehouse


@pytest.fixture
def cockpit_login(cases, monkeypatch):
    monkeypatch.setenv("DTSEN_COCKPIT_DATABASE_URL", os.environ["DTSEN_DATABASE_URL"])
    return cases


def _cell(page: str, table: str, row: str, field: str) -> str:
    (body,) = re.findall(rf'<table id="{table}">(.*?)</table>', page, flags=re.S)
    (line,) = re.findall(rf"<tr {row}[^>]*>(.*?)</tr>", body, flags=re.S)
    (value,) = re.findall(rf'data-field="{field}">(.*?)</td>', line, flags=re.S)
    return value.strip()


def test_the_cases_page_counts_per_regency_origin_and_round_as_the_warehouse_holds_them(cockpit_login):
    from dtsen.cases.work import today

    conn = cockpit_login
    rows = conn.execute(
        "SELECT id_kasus, kode_wilayah, state, outcome, due_date, opened_at::date, r.round_id AS opened, "
        "(SELECT round_id FROM ingest.round WHERE round_seq = c.closed_round) AS closed "
        "FROM cases.verification_case c JOIN ingest.round r ON r.round_seq = c.opened_round"
    ).fetchall()
    origins = {}
    for id_kasus, origin in conn.execute("SELECT id_kasus, origin FROM cases.case_reason"):
        origins.setdefault(origin, set()).add(id_kasus)
    conn.rollback()
    states = {r[2] for r in rows}
    assert {"OPEN", "EXPIRED", "RESOLVED"} <= states, states  # the fixture's rounds gave all three
    with _cockpit() as http:
        page, api = http.get("/dtsen/cases"), http.get("/dtsen/api/cases")
    assert (page.status_code, api.status_code) == (200, 200)
    d, text, day = api.json(), page.text, today()
    assert d["today"] == day.isoformat()

    by_regency: dict[str, list] = {}
    for r in rows:
        by_regency.setdefault(r[1][:4], []).append(r)
    assert [r["kode"] for r in d["regions"]] == sorted(by_regency)
    for shown in d["regions"]:
        mine = by_regency[shown["kode"]]
        live = [r for r in mine if r[2] in LIVE]
        expected = {
            "open": sum(r[2] == "OPEN" for r in mine),
            "assigned": sum(r[2] == "ASSIGNED" for r in mine),
            "visited": sum(r[2] == "VISITED" for r in mine),
            "overdue": sum(r[2] in ("OPEN", "ASSIGNED") and r[4] < day for r in mine),
            "expired": sum(r[2] == "EXPIRED" for r in mine),
            "resolved": sum(r[2] == "RESOLVED" for r in mine),
            "older_than_90_days": sum(r[5] < day - dt.timedelta(days=90) for r in live),
            "oldest_live_days": max(((day - r[5]).days for r in live), default=None),
        }
        assert {k: shown[k] for k in expected} == expected, shown["kode"]
        whole = len(mine)
        assert shown["overdue_share"] == pytest.approx(
            (expected["overdue"] + expected["expired"]) / whole, abs=1e-4
        )
        row = f'data-regency="{shown["kode"]}"'
        for field in ("open", "expired", "resolved"):
            assert _cell(text, "regions", row, field) == f"{expected[field]:,}"

    outcome = {r[0]: (r[2], r[3]) for r in rows}
    assert {o["origin"] for o in d["origins"]} == set(origins)
    assert {"sanggah", "usul"} <= set(origins)  # the sample's households' objections and proposals
    for o in d["origins"]:
        ids = origins[o["origin"]]
        resolved = [i for i in ids if outcome[i][0] == "RESOLVED"]
        upheld = [i for i in resolved if outcome[i][1] != "CONFIRMED"]
        assert (o["cases"], o["resolved"], o["upheld"]) == (len(ids), len(resolved), len(upheld))
        assert o["upheld_share"] == (round(len(upheld) / len(resolved), 4) if resolved else None)
        assert _cell(text, "origins", f'data-origin="{o["origin"]}"', "cases") == f"{len(ids):,}"

    per_round = {r["round_id"]: r for r in d["rounds"]}
    assert list(per_round) == ["2026-Q3", "2026-Q2", "2026-Q1"]
    for round_id, r in per_round.items():
        assert r["opened"] == sum(x[6] == round_id for x in rows)
        assert r["expired"] == sum(x[7] == round_id and x[2] == "EXPIRED" for x in rows)
        assert r["moved"] == sum(x[7] == round_id and x[3] == "MOVED" for x in rows)
    # counts only: no family card number (nor any 16-digit number) on the page or in the API
    assert not re.search(r"\d{16}", text) and not re.search(r"\d{16}", api.text)


def test_without_a_login_the_cases_page_goes_to_airflows_login_and_the_api_answers_401(cockpit_login):
    with _cockpit(reader=None) as http:
        page = http.get("/dtsen/cases", follow_redirects=False)
        api = http.get("/dtsen/api/cases", follow_redirects=False)
    assert (page.status_code, api.status_code) == (303, 401)
    assert page.headers["location"] == "/api/v2/auth/login?next=%2Fdtsen%2Fcases"
