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
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from dtsen.warehouse import engine
from dtsen_dev.browser import CHROMIUM, chromium, open_page, wait_http
from dtsen_dev.local_airflow import MailSink, airflow_env, free_port, migrate_airflow_db

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)

DAG = "dtsen_update_round"
PASSWORD = "cockpit-test-password"
RUN_DAG_TEST = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
run = bag.dags["dtsen_update_round"].test(run_conf=json.loads(sys.argv[2]))
tasks = {ti.task_id: str(ti.state) for ti in run.get_task_instances() if ti.map_index < 0}
print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": tasks}))
"""


def _programs(path: Path, pbi_jk_desil_max: int) -> Path:
    programs = json.loads((PROJECT_ROOT / "config" / "programs.json").read_text())
    next(p for p in programs["programs"] if p["id"] == "pbi_jk")["desil_max"] = pbi_jk_desil_max
    path.write_text(json.dumps(programs))
    return path


class Cockpit:
    """The running deployment: api-server URL, the warehouse, the mail sink, and what the rounds saw."""

    def __init__(self, base: str, warehouse: str, env: dict, mail: MailSink, work: Path):
        self.base, self.warehouse, self.env, self.mail, self.work = base, warehouse, env, mail, work
        self.seen: dict[str, dict] = {}

    def token(self, user: str = "ops") -> str:
        answer = httpx.post(f"{self.base}/auth/token", json={"username": user, "password": PASSWORD})
        answer.raise_for_status()
        return answer.json()["access_token"]

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(engine.libpq_conninfo(self.warehouse)) as conn:
            return conn.execute(query, params).fetchall()

    def round_waiting_for_a_decision(self, round_id: str, programs: Path, choice: str, reason: str) -> dict:
        """Run the round through Airflow; when its approval task waits, read what it asks and answer it."""
        log = self.work / f"dag-test-{round_id}.log"  # a file: Airflow's task logs would fill a pipe
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                RUN_DAG_TEST,
                str(PROJECT_ROOT / "dags"),
                json.dumps({"round_id": round_id}),
            ],
            env=self.env | {"DTSEN_PROGRAMS": str(programs)},
            stdout=open(log, "w"),  # noqa: SIM115 (closed with the process)
            stderr=subprocess.STDOUT,
        )
        headers = {"Authorization": f"Bearer {self.token()}"}
        seen: dict = {}
        deadline = time.monotonic() + 600
        while "detail" not in seen:
            assert proc.poll() is None, (
                f"the run ended without waiting for a decision:\n{log.read_text()[-4000:]}"
            )
            assert time.monotonic() < deadline, "the approval task never asked"
            found = httpx.get(f"{self.base}/api/v2/dags/{DAG}/dagRuns/~/hitlDetails", headers=headers)
            waiting = [d for d in found.json().get("hitl_details", []) if not d.get("response_received")]
            if waiting:
                seen["detail"] = waiting[0]
            else:
                time.sleep(1)
        run_id = seen["detail"]["task_instance"]["dag_run_id"]
        version = self.sql(
            "SELECT v.version FROM publish.version v JOIN ingest.round r USING (round_seq) "
            "WHERE r.round_id = %s AND v.status = 'BLOCKED'",
            (round_id,),
        )[0][0]
        seen["version"] = version
        seen["page_while_waiting"] = httpx.get(f"{self.base}/dtsen/versions/{version}", headers=headers).text
        seen["mail"] = [m for m in self.mail.take() if m["To"] == "dataops@dtsen.example"]
        seen["answer"] = httpx.patch(
            f"{self.base}/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails",
            headers=headers,
            json={"chosen_options": [choice], "params_input": {"reason": reason}},
        )
        proc.wait(timeout=600)
        lines = log.read_text().splitlines()
        result = json.loads(next(line for line in lines if line.startswith("RESULT "))[7:])
        return seen | result


@pytest.fixture(scope="module")
def cockpit(scratch_database, tmp_path_factory):
    work = tmp_path_factory.mktemp("cockpit")
    home = work / "airflow"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps({"ops": PASSWORD}))
    shutil.copytree(SAMPLE_DIR / "landing", work / "landing")
    warehouse = scratch_database("cockpit")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with MailSink(free_port()) as mail:
        env = (
            os.environ
            | airflow_env(mail.port, home=home)
            | {
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
                "AIRFLOW__API__BASE_URL": base,
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "DTSEN_APPROVERS": "ops",  # the user who answers the approval task
                "DTSEN_DATABASE_URL": warehouse,
                "DTSEN_LANDING_ROOT": str(work / "landing"),
                "DTSEN_PUBLISH_ROOT": str(work / "publish"),
                "DTSEN_RAW_ROOT": str(work / "raw"),
                "DTSEN_OUTBOX": str(work / "outbox"),
            }
        )
        migrate_airflow_db(env)
        with pytest.MonkeyPatch.context() as patch:
            for key in (
                "DTSEN_DATABASE_URL",
                "DTSEN_LANDING_ROOT",
                "DTSEN_PUBLISH_ROOT",
                "DTSEN_RAW_ROOT",
                "DTSEN_OUTBOX",
            ):
                patch.setenv(key, env[key])
            from dtsen.round import RoundContext, run_round
            from dtsen.warehouse.migrate import migrate

            with psycopg.connect(engine.libpq_conninfo(warehouse)) as conn:
                migrate(conn)
            run_round(RoundContext.create("2026-Q1"))
        airflow = [sys.executable, "-m", "airflow"]
        subprocess.run([*airflow, "dags", "reserialize"], env=env, check=True, capture_output=True)
        server = subprocess.Popen(
            [*airflow, "api-server", "--port", str(port)],
            env=env,
            stdout=open(work / "api-server.log", "w"),  # noqa: SIM115 (closed with the process)
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"{base}/api/v2/version", 120)
            site = Cockpit(base, warehouse, env, mail, work)
            mail.take()
            site.seen["2026-Q2"] = site.round_waiting_for_a_decision(
                "2026-Q2",
                _programs(work / "pbi-jk-1-2.json", 2),
                "Approve",
                "PBI JK narrowed by decree (test)",
            )
            site.seen["2026-Q3"] = site.round_waiting_for_a_decision(
                "2026-Q3", _programs(work / "pbi-jk-1-5.json", 5), "Reject", "not before the decree is signed"
            )
            yield site
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_the_plugin_api_needs_a_valid_airflow_token(cockpit):
    url = f"{cockpit.base}/dtsen/api/versions"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert httpx.get(f"{cockpit.base}/dtsen/versions/1").status_code == 401  # pages too
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


async def _walk(cockpit, debug_port: int, shots: Path) -> dict[str, str]:
    seen = {}
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
            ("nav", "/plugin/dtsen", ("Rounds", "2026-Q1")),
            ("dag_tab", f"/dags/{DAG}/plugin/dtsen_dag", ("2026-Q2",)),
            (
                "run_tab",
                f"/dags/{DAG}/runs/{cockpit.seen['2026-Q2']['run_id']}/plugin/dtsen_run",
                ("Round 2026-Q2", "By source"),
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


def test_the_cockpit_pages_render_the_warehouse_figures_in_chromium(cockpit, browser, tmp_path):
    seen = asyncio.run(_walk(cockpit, browser, tmp_path / "screenshots"))
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
    # no NIK or KK number on any page: no 16-digit number standing alone (checksums are hex)
    leaks = {name: re.findall(r"(?<![0-9a-f])\d{16}(?![0-9a-f])", text) for name, text in seen.items()}
    assert not any(leaks.values()), leaks
    assert len(list((tmp_path / "screenshots").glob("*.png"))) == len(seen)
