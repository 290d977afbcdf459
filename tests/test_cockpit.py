"""The data-ops cockpit and the approval of a blocked candidate, end to end: a real api-server with
the plugin loaded (simple auth manager, SQLite metadata), a real PostgreSQL warehouse after real rounds
on the sample, a real SMTP server, a real HTTP client and real headless Chromium.

Round 2026-Q1 runs through the step list. 2026-Q2 and 2026-Q3 run through Airflow (`dag.test()` in a
process of its own that shares the api-server's metadata DB) with program rules that make each
candidate drift, so each waits at the approval task: user `ops` approves Q2 through Airflow's
human-in-the-loop API, and rejects Q3.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest

from dtsen.warehouse import engine
from dtsen_dev.browser import CHROMIUM, chromium, open_page
from dtsen_dev.local_airflow import MailSink
from tests.factories import (
    airflow_beside_a_warehouse,
    airflow_token,
    answer_hitl,
    programs_with_pbi_jk_desil_max,
    start_update_round,
    update_round_result,
    waiting_hitl_detail,
)

# only the tests that drive a browser need Chromium: the HTTP ones run wherever the api-server does
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)

DAG = "dtsen_update_round"
PASSWORD = "cockpit-test-password"


class Cockpit:
    """The running deployment: api-server URL, the warehouse, the mail sink, and what the rounds saw."""

    def __init__(self, base: str, warehouse: str, env: dict, mail: MailSink, work: Path):
        self.base, self.warehouse, self.env, self.mail, self.work = base, warehouse, env, mail, work
        self.seen: dict[str, dict] = {}

    def token(self, user: str = "ops") -> str:
        return airflow_token(self.base, user, PASSWORD)

    def get(self, path: str, **kwargs) -> httpx.Response:
        """`path` fetched as user ops (a fresh token: the fixture's may have expired)."""
        return httpx.get(
            f"{self.base}{path}", headers={"Authorization": f"Bearer {self.token()}"}, timeout=60, **kwargs
        )

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(engine.libpq_conninfo(self.warehouse)) as conn:
            return conn.execute(query, params).fetchall()

    def round_waiting_for_a_decision(self, round_id: str, programs: Path, choice: str, reason: str) -> dict:
        """Run the round through Airflow; when its approval task waits, read what it asks and answer it."""
        log = self.work / f"dag-test-{round_id}.log"
        proc = start_update_round(self.env | {"DTSEN_PROGRAMS": str(programs)}, {"round_id": round_id}, log)
        token = self.token()
        seen: dict = {"detail": waiting_hitl_detail(self.base, token, proc, log)}
        run_id = seen["detail"]["task_instance"]["dag_run_id"]
        version = self.sql(
            "SELECT v.version FROM publish.version v JOIN ingest.round r USING (round_seq) "
            "WHERE r.round_id = %s AND v.status = 'BLOCKED'",
            (round_id,),
        )[0][0]
        seen["version"] = version
        seen["page_while_waiting"] = httpx.get(
            f"{self.base}/dtsen/versions/{version}", headers={"Authorization": f"Bearer {token}"}
        ).text
        seen["mail"] = [m for m in self.mail.take() if m["To"] == "dataops@dtsen.example"]
        seen["answer"] = answer_hitl(
            self.base, token, run_id, {"chosen_options": [choice], "params_input": {"reason": reason}}
        )
        return seen | update_round_result(proc, log, timeout=600)


@pytest.fixture(scope="module")
def cockpit(scratch_database, tmp_path_factory):
    work = tmp_path_factory.mktemp("cockpit")
    warehouse = scratch_database("cockpit")
    users = {"ops": ("admin", PASSWORD)}
    with airflow_beside_a_warehouse(work, warehouse, users, {"DTSEN_APPROVERS": "ops"}) as (base, env, mail):
        site = Cockpit(base, warehouse, env, mail, work)
        mail.take()
        site.seen["2026-Q2"] = site.round_waiting_for_a_decision(
            "2026-Q2",
            programs_with_pbi_jk_desil_max(work / "pbi-jk-1-2.json", 2),
            "Approve",
            "PBI JK narrowed by decree (test)",
        )
        site.seen["2026-Q3"] = site.round_waiting_for_a_decision(
            "2026-Q3",
            programs_with_pbi_jk_desil_max(work / "pbi-jk-1-5.json", 5),
            "Reject",
            "not before the decree is signed",
        )
        yield site


def test_the_plugin_api_needs_a_valid_airflow_token(cockpit):
    url = f"{cockpit.base}/dtsen/api/versions"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    answer = httpx.get(url, headers={"Authorization": f"Bearer {cockpit.token()}"})
    assert answer.status_code == 200
    assert [v["version"] for v in answer.json()] == [
        v for (v,) in cockpit.sql("SELECT version FROM publish.version ORDER BY version DESC")
    ]


def test_an_approved_candidate_is_published_with_the_responding_user_as_its_approver(cockpit):
    q2 = cockpit.seen["2026-Q2"]
    assert q2["answer"].status_code == 200, q2["answer"].text
    assert (
        q2["state"] == "success"
        and q2["tasks"]["approval"] == "success"
        and q2["tasks"]["publish"] == "success"
    )
    body = q2["detail"]["body"]
    assert f"**Version {q2['version']}**" in body and "| pbi_jk |" in body and "Approving means" in body
    approved = cockpit.sql(
        "SELECT status, approved_by, approval_reason FROM publish.version WHERE version = %s",
        (q2["version"],),
    )
    assert approved == [("SUPERSEDED", "ops", "PBI JK narrowed by decree (test)")] or approved == [
        ("PUBLISHED", "ops", "PBI JK narrowed by decree (test)")
    ]
    decisions = cockpit.sql(
        "SELECT outcome, decided_by, channel, dag_run_id FROM publish.approval_decision WHERE version = %s",
        (q2["version"],),
    )
    assert decisions == [("APPROVED", "ops", "airflow-ui", q2["run_id"])]
    manifest = json.loads(
        (cockpit.work / "publish" / "versions" / str(q2["version"]) / "manifest.json").read_text()
    )
    assert manifest["audit"]["approved_by"] == "ops"


def test_data_ops_are_emailed_that_an_approval_waits_with_the_link(cockpit):
    q2 = cockpit.seen["2026-Q2"]
    subjects = [m["Subject"] for m in q2["mail"]]
    assert subjects == [
        f"[DTSEN] Approval needed for version {q2['version']} (round 2026-Q2)"
    ]  # not also "blocked"
    text = q2["mail"][0].get_body().get_content()
    assert f"{cockpit.base}/dags/{DAG}/runs/" in text and "required_actions" in text
    assert f"{cockpit.base}/dtsen/versions/{q2['version']}" in text
    assert "pbi_jk" in text


def test_a_rejected_candidate_stays_blocked_and_the_current_version_stays_current(cockpit):
    q2, q3 = cockpit.seen["2026-Q2"], cockpit.seen["2026-Q3"]
    assert q3["answer"].status_code == 200, q3["answer"].text
    assert q3["state"] == "success" and q3["tasks"]["publish"] == "skipped"
    assert cockpit.sql("SELECT status FROM publish.version WHERE version = %s", (q3["version"],)) == [
        ("BLOCKED",)
    ]
    assert cockpit.sql("SELECT version FROM publish.current_version") == [(q2["version"],)]
    assert cockpit.sql(
        "SELECT outcome, decided_by, channel, reason FROM publish.approval_decision WHERE version = %s",
        (q3["version"],),
    ) == [("REJECTED", "ops", "airflow-ui", "not before the decree is signed")]
    assert not (cockpit.work / "publish" / "versions" / str(q3["version"])).exists()


def test_the_blocked_candidate_page_shows_the_drifted_regencies_with_their_numbers(cockpit):
    q2 = cockpit.seen["2026-Q2"]
    flagged = cockpit.sql(
        "SELECT d ->> 'kode_kabupaten', d ->> 'program', (d ->> 'sebelumnya')::int, (d ->> 'dikeluarkan')::int "
        "FROM publish.version v, jsonb_array_elements(v.audit -> 'drift_flagged') d WHERE v.version = %s",
        (q2["version"],),
    )
    assert flagged
    page = q2["page_while_waiting"]
    assert "Blocked candidate" in page and "Approving it means" in page
    for kab, program, before, removed in flagged:
        assert f'data-kab="{kab}" data-program="{program}"' in page
        assert f"{before:,}" in page and f"{removed:,}" in page


async def _walk(cockpit, debug_port: int, shots: Path, notify_run: tuple[str, int]) -> dict[str, str]:
    seen = {}
    notify_run_id, announced = notify_run
    async with open_page(debug_port) as page:
        await page.set_cookie(cockpit.base, "_token", cockpit.token())
        for name, path, needles in (
            ("rounds", "/dtsen/", ("Rounds", "2026-Q3", "BLOCKED")),
            ("round", "/dtsen/rounds/2026-Q1", ("Round 2026-Q1", "By source and region", "ringkasan.json")),
            ("region", "/dtsen/regions/3674", ("Region 3674", "Rejected rows")),
            ("versions", "/dtsen/versions", ("Versions", "pbi_jk")),
            (
                "version2",
                f"/dtsen/versions/{cockpit.seen['2026-Q2']['version']}",
                ("Approved by", "ops", "sha256"),
            ),
            (
                "version3",
                f"/dtsen/versions/{cockpit.seen['2026-Q3']['version']}",
                ("Blocked candidate", "REJECTED"),
            ),
            ("compare", "/dtsen/compare?a=1&b=2", ("Compare versions", "per program")),
            ("cases", "/dtsen/cases", ("Verification cases", "Per regency", "Per origin", "2026-Q2")),
            ("nav", "/plugin/dtsen", ("Rounds", "2026-Q1")),
            ("dag_tab", f"/dags/{DAG}/plugin/dtsen_dag", ("2026-Q2",)),
            (
                "run_tab",
                f"/dags/{DAG}/runs/{cockpit.seen['2026-Q2']['run_id']}/plugin/dtsen_run",
                ("Round 2026-Q2", "By source"),
            ),
            ("notify_dag_tab", "/dags/dtsen_notify_programs/plugin/dtsen_dag", ("Versions", "pbi_jk")),
            (
                "notify_run_tab",
                f"/dags/dtsen_notify_programs/runs/{quote(notify_run_id, safe='')}/plugin/dtsen_run",
                (f"Version {announced}", "Recipients per program"),
            ),
        ):
            await page.goto(cockpit.base + path)
            seen[name] = await page.wait_for(*needles, seconds=60)
            await page.screenshot(shots / f"{name}.png")
    return seen


@pytest.fixture(scope="module")
def browser():
    with chromium() as debug_port:
        yield debug_port


@needs_chromium
def test_the_cockpit_pages_render_the_warehouse_figures_in_chromium(cockpit, browser, tmp_path, notify_run):
    seen = asyncio.run(_walk(cockpit, browser, tmp_path / "screenshots", notify_run))
    # the round: rows received, merged and rejected equal what each region was told (kept ringkasan)
    received, merged, rejected = cockpit.sql(
        "SELECT sum((f.value ->> 'received')::bigint), sum((f.value ->> 'merged')::bigint), "
        "sum((f.value ->> 'rejected')::bigint) FROM ingest.submission s JOIN ingest.round r USING (round_seq), "
        "jsonb_each(s.ringkasan -> 'rows') f WHERE r.round_id = '2026-Q1'"
    )[0]
    assert all(f"{n:,}" in seen["round"] for n in (received, merged, rejected))
    # a version: individuals per desil and recipients per program, as the build kept them
    version = cockpit.seen["2026-Q2"]["version"]
    counts, programs = cockpit.sql(
        "SELECT counts, programs FROM publish.version WHERE version = %s", (version,)
    )[0]
    for d in counts["desil"].values():
        assert f"{d['individuals']:,}" in seen["version2"]
    for p in programs.values():
        assert f"{p['recipients']:,}" in seen["version2"]
    assert counts["individuals"] and f"{counts['individuals']:,}" in seen["versions"]
    # the verification cases: each regency's row as the warehouse holds it (state by state), and each
    # origin's cases
    from dtsen.cases.work import today

    for row in cockpit.sql(
        "SELECT left(kode_wilayah, 4), count(*) FILTER (WHERE state = 'OPEN'), count(*) FILTER (WHERE state = "
        "'ASSIGNED'), count(*) FILTER (WHERE state = 'VISITED'), count(*) FILTER (WHERE state IN ('OPEN', "
        "'ASSIGNED') AND due_date < %s), count(*) FILTER (WHERE state = 'EXPIRED'), count(*) FILTER (WHERE "
        "state = 'RESOLVED') FROM cases.verification_case GROUP BY 1",
        (today(),),
    ):
        counts = r"\s+".join(f"{n:,}" for n in row[1:])
        assert re.search(rf"{row[0]} [^\n]*?\s{counts}\s", seen["cases"]), (row, seen["cases"][:2000])
    for origin, cases in cockpit.sql(
        "SELECT origin, count(DISTINCT id_kasus) FROM cases.case_reason GROUP BY 1"
    ):
        assert re.search(rf"{origin}\s+{cases:,}\s", seen["cases"]), origin
    # no NIK or KK number on any page: no 16-digit number standing alone (checksums are hex)
    leaks = {name: re.findall(r"(?<![0-9a-f])\d{16}(?![0-9a-f])", text) for name, text in seen.items()}
    assert not any(leaks.values()), leaks
    assert len(list((tmp_path / "screenshots").glob("*.png"))) == len(seen)


def _pemda_counts(cockpit, round_id: str) -> tuple[int, int, list[tuple[str, str]]]:
    """Rows received and rejected in a round as its ringkasan.json files told the regions, identical
    resubmissions left out; and the resubmissions with the submission each repeats."""
    received, rejected = cockpit.sql(
        "SELECT sum((f.value ->> 'received')::bigint), sum((f.value ->> 'rejected')::bigint) "
        "FROM ingest.submission s JOIN ingest.round r USING (round_seq), jsonb_each(s.ringkasan -> 'rows') f "
        "WHERE r.round_id = %s AND s.duplicate_of IS NULL",
        (round_id,),
    )[0]
    duplicates = cockpit.sql(
        "SELECT s.submission_id, o.submission_id FROM ingest.submission s JOIN ingest.round r USING (round_seq) "
        "JOIN ingest.submission o ON o.submission_pk = s.duplicate_of WHERE r.round_id = %s",
        (round_id,),
    )
    return int(received), int(rejected), duplicates


def test_identical_resubmissions_are_shown_apart_and_are_no_rejected_rows_of_the_round(cockpit):
    received, rejected, duplicates = _pemda_counts(cockpit, "2026-Q3")
    assert [d for d, _ in duplicates] == ["3674-2026Q3-02"]  # the sample resubmits 3674's files
    duplicate, original = duplicates[0]
    q3 = next(r for r in cockpit.get("/dtsen/api/rounds").json() if r["round_id"] == "2026-Q3")
    assert (q3["rows_received"], q3["rows_rejected"], q3["duplicate_submissions"]) == (received, rejected, 1)
    assert q3["rejected_share"] == round(rejected / received, 4)
    detail = cockpit.get("/dtsen/api/rounds/2026-Q3").json()
    assert duplicate not in [s["submission_id"] for s in detail["submissions"]]
    assert [(d["submission_id"], d["duplicate_of"]) for d in detail["duplicates"]] == [(duplicate, original)]
    # the region page counts its submissions as the round page does, and lists the resubmission apart
    region = cockpit.get("/dtsen/api/regions/3674").json()
    on_round_page = [
        (s["round_id"], s["submission_id"], s["status"], s["received"], s["rejected"], s["rejected_share"])
        for r in ("2026-Q1", "2026-Q2", "2026-Q3")
        for s in cockpit.get(f"/dtsen/api/rounds/{r}").json()["submissions"]
        if s["kode_wilayah"] == "3674"
    ]
    on_region_page = [
        (p["round_id"], p["submission_id"], p["status"], p["received"], p["rejected"], p["rejected_share"])
        for p in region["rounds"]
    ]
    assert on_region_page == on_round_page
    assert [d["submission_id"] for d in region["duplicates"]] == [
        d
        for (d,) in cockpit.sql(
            "SELECT submission_id FROM ingest.submission WHERE kode_wilayah = '3674' "
            "AND duplicate_of IS NOT NULL ORDER BY round_seq"
        )
    ]
    # and the pages say so
    overview = cockpit.get("/dtsen/").text
    row = re.search(r'<tr data-round="2026-Q3">(.*?)</tr>', overview, re.S).group(1)
    assert f'data-field="rows_rejected">{rejected:,}<' in row
    assert f'data-field="rejected_share">{rejected / received:.1%}<' in row
    assert 'data-field="duplicate_submissions">1<' in row
    for path in ("/dtsen/rounds/2026-Q3", "/dtsen/regions/3674"):
        page = cockpit.get(path).text
        listed = re.search(r'<table id="duplicates">(.*?)</table>', page, re.S).group(1)
        assert f'data-submission="{duplicate}"' in listed and f"<code>{original}</code>" in listed
        assert f'<tr data-submission="{duplicate}">' not in page.replace(listed, "")


def test_a_submission_has_one_outcome_in_dtsen_report_the_cockpit_and_its_ringkasan(cockpit):
    from dtsen.report import format_round, round_report

    outcomes = set()
    for round_id in ("2026-Q1", "2026-Q2", "2026-Q3"):
        told = dict(
            cockpit.sql(
                "SELECT s.submission_id, s.ringkasan ->> 'status' FROM ingest.submission s "
                "JOIN ingest.round r USING (round_seq) WHERE r.round_id = %s",
                (round_id,),
            )
        )
        with psycopg.connect(engine.libpq_conninfo(cockpit.warehouse)) as conn:
            cli = format_round(round_report(conn, round_id, cockpit.work / "publish"))
        detail = cockpit.get(f"/dtsen/api/rounds/{round_id}").json()
        shown = {s["submission_id"]: s["status"] for s in detail["submissions"]}
        page = cockpit.get(f"/dtsen/rounds/{round_id}").text
        for submission_id, outcome in told.items():
            line = next(line for line in cli if f" {submission_id} " in line)
            assert line.split()[2] == outcome, (line, outcome)  # `dtsen report`
            if submission_id in shown:  # identical resubmissions are listed apart
                assert shown[submission_id] == outcome
                row = re.search(rf'<tr data-submission="{submission_id}">(.*?)</tr>', page, re.S).group(1)
                assert f'<span class="status {outcome}">{outcome}</span>' in row
            outcomes.add(outcome)
    assert {"MERGED", "PARTIAL", "REJECTED"} <= outcomes


def test_a_blocked_version_page_shows_each_drift_once_with_one_rounding(cockpit):
    version = cockpit.seen["2026-Q3"]["version"]
    flagged = cockpit.sql(
        "SELECT d ->> 'kode_kabupaten', d ->> 'program' FROM publish.version v, "
        "jsonb_array_elements(v.audit -> 'drift_flagged') d WHERE v.version = %s",
        (version,),
    )
    assert flagged
    page = cockpit.get(f"/dtsen/versions/{version}").text
    assert "Blocked candidate" in page and "Approving it means" in page
    for kab, program in flagged:
        assert page.count(f'data-kab="{kab}" data-program="{program}"') == 1
        row = re.search(rf'<tr data-kab="{kab}" data-program="{program}"[^>]*>(.*?)</tr>', page, re.S).group(
            1
        )
        assert "beyond threshold" in row
    text = re.sub(r"<[^>]+>", " ", page.split("<main>", 1)[1])
    assert re.findall(r"\d+(?:\.\d+)?%", text)
    assert not re.findall(r"(?<![\d.])\d+%", text)  # every share to one decimal


def test_integrity_warnings_say_what_each_rule_means(cockpit):
    from dtsen.integrity.config import load_integrity

    described = {r.id: r.description for r in load_integrity().implausible}
    versions = cockpit.sql(
        "SELECT version, audit -> 'integrity' -> 'implausible' FROM publish.version ORDER BY version"
    )
    met = [(v, rule) for v, rules in versions for rule, e in (rules or {}).items() if e["families"]]
    assert met  # the sample's versions have families meeting implausible-recipient rules
    for version, rule in met:
        page = cockpit.get(f"/dtsen/versions/{version}").text
        warnings = re.search(r'<table id="integrity-warnings">(.*?)</table>', page, re.S).group(1)
        row = re.search(rf'<tr data-kind="implausible" data-rule="{rule}">(.*?)</tr>', warnings, re.S).group(
            1
        )
        assert described[rule] in row
        assert not re.search(rf"\b{rule}\b", re.sub(r"<[^>]+>", " ", warnings))  # no bare rule id


def test_a_page_without_a_login_goes_to_airflows_login_and_the_api_answers_401(cockpit):
    page = httpx.get(f"{cockpit.base}/dtsen/rounds/2026-Q1?x=1")
    assert page.status_code == 303
    assert page.headers["location"] == "/api/v2/auth/login?" + "next=%2Fdtsen%2Frounds%2F2026-Q1%3Fx%3D1"
    login = httpx.get(f"{cockpit.base}/dtsen/", follow_redirects=True)
    assert login.status_code == 200 and "text/html" in login.headers["content-type"]
    assert login.url.path == "/auth/login" and login.url.params["next"] == "/dtsen/"  # the auth manager's
    api = httpx.get(f"{cockpit.base}/dtsen/api/rounds")
    assert api.status_code == 401 and api.json() == {"detail": "Not authenticated"}
    bad = httpx.get(f"{cockpit.base}/dtsen/api/rounds", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401


@pytest.fixture(scope="module")
def notify_run(cockpit) -> tuple[str, int]:
    """A run of dtsen_notify_programs for the version Q2 published, triggered from the form."""
    version = cockpit.seen["2026-Q2"]["version"]
    created = httpx.post(
        f"{cockpit.base}/api/v2/dags/dtsen_notify_programs/dagRuns",
        headers={"Authorization": f"Bearer {cockpit.token()}"},
        json={"logical_date": None, "conf": {"version": version}},
    )
    assert created.status_code == 200, created.text
    return created.json()["dag_run_id"], version


def test_the_dtsen_tabs_on_every_dag_and_run_show_what_that_dag_did(cockpit, notify_run):
    plugins = cockpit.get("/api/v2/plugins").json()["plugins"]
    views = {
        v["destination"]: v["href"]
        for p in plugins
        if p["name"] == "dtsen_cockpit"
        for v in p["external_views"]
    }
    run_id, version = notify_run
    expected = (  # Airflow shows the dag and dag_run tabs on every DAG: each must have content there
        ("dag", DAG, "", "Rounds"),
        ("dag_run", DAG, cockpit.seen["2026-Q2"]["run_id"], "Round 2026-Q2"),
        ("dag", "dtsen_notify_programs", "", "<h1>Versions</h1>"),
        ("dag_run", "dtsen_notify_programs", run_id, f"<h1>Version {version} "),
    )
    for destination, dag_id, run, needle in expected:
        href = (
            views[destination]
            .replace("{DAG_ID}", quote(dag_id, safe=""))
            .replace("{RUN_ID}", quote(run, safe=""))
        )
        answer = cockpit.get(f"/{href}", follow_redirects=True)
        assert answer.status_code == 200, (href, answer.status_code)
        assert needle in answer.text and "Not found" not in answer.text, href


# Per page (the cockpit's own documents, also inside the UI's plugin iframe): how far the page runs past
# its right edge, and per table its width and right edge, the width of the box around it, whether that
# box scrolls sideways, and how many of its cells wrap onto a second line.
_LAYOUT = """(() => {
  const docs = [document];
  for (const f of document.querySelectorAll('iframe')) {
    try { if (f.contentDocument && f.contentDocument.body) docs.push(f.contentDocument); } catch (e) {}
  }
  return docs.filter(doc => doc.location.pathname.includes('/dtsen/')).map(doc => {
    const win = doc.defaultView, root = doc.documentElement;
    return {path: doc.location.pathname, width: root.clientWidth, overflow: root.scrollWidth - root.clientWidth,
      tables: [...doc.querySelectorAll('table')].map(t => {
        const box = t.parentElement, r = t.getBoundingClientRect();
        const line = parseFloat(win.getComputedStyle(t).lineHeight);
        const wrapped = [...t.querySelectorAll('td, th')].filter(c => {
          const range = doc.createRange(); range.selectNodeContents(c);
          return range.getBoundingClientRect().height > 1.6 * line;
        }).length;
        return {id: t.id, width: r.width, right: r.right, box: box.clientWidth,
                box_right: box.getBoundingClientRect().right, wrapped,
                scrolls: ['auto', 'scroll'].includes(win.getComputedStyle(box).overflowX)};
      })};
  });
})()"""


async def _layouts(cockpit, debug_port: int, width: int, shots: Path) -> list[dict]:
    run_tab = f"/dags/{DAG}/runs/{quote(cockpit.seen['2026-Q3']['run_id'], safe='')}/plugin/dtsen_run"
    found = []
    async with open_page(debug_port) as page:
        await page.call(
            "Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False
        )
        await page.set_cookie(cockpit.base, "_token", cockpit.token())
        for name, path, needle in (
            ("rounds", "/dtsen/", "Rounds"),
            ("round", "/dtsen/rounds/2026-Q3", "By source and region"),
            ("version", f"/dtsen/versions/{cockpit.seen['2026-Q3']['version']}", "Drift per regency"),
            ("versions", "/dtsen/versions", "Versions"),
            ("cases", "/dtsen/cases", "Per regency"),
            ("run_tab", run_tab, "By source and region"),
        ):
            await page.goto(cockpit.base + path)
            await page.wait_for(needle, seconds=60)
            await asyncio.sleep(0.5)  # the iframe's layout settles after its text is there
            pages = await page.evaluate(_LAYOUT)
            assert pages and all(p["tables"] for p in pages), (name, pages)
            found += [p | {"name": name} for p in pages]
            await page.screenshot(shots / f"{name}-{width}.png")
    return found


@needs_chromium
@pytest.mark.parametrize("width", [1400, 1000])
def test_tables_use_the_page_width_and_scroll_inside_their_box_when_wider(cockpit, browser, tmp_path, width):
    pages = asyncio.run(_layouts(cockpit, browser, width, tmp_path))
    assert any(p["name"] == "run_tab" for p in pages)
    for p in pages:
        where = f"{p['name']} at {width}px: {p}"
        assert p["overflow"] <= 1, where  # nothing runs past the frame's right edge, to be cut off there
        for t in p["tables"]:
            if t["width"] > t["box"] + 1:  # too wide for the page: it scrolls inside its own box
                assert t["scrolls"] and t["box_right"] <= p["width"] + 1, where
            if t["wrapped"]:  # a cell wraps only once the table has taken the page's whole width
                assert t["right"] >= p["width"] - 21, where
