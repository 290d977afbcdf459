"""The Airflow DAGs through the real Airflow runtime (`dag.test()`), against a real PostgreSQL, a
real SMTP server (aiosmtpd) and a real HTTP server receiving the signed webhook.

Airflow reads its configuration when first imported: this module points it at a private home
(SQLite metadata, this repository's dags/, no examples) before anything imports it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from dtsen_dev.local_airflow import MailSink, airflow_env, free_port, migrate_airflow_db

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dtsen-airflow-test-"))


SMTP_PORT = free_port()
# the project's own Airflow settings, with a home of this module's own; loud task-runner errors
AIRFLOW_ENV = airflow_env(SMTP_PORT, home=AIRFLOW_HOME) | {"AIRFLOW__CORE__UNIT_TEST_MODE": "False"}
os.environ.update(AIRFLOW_ENV)
DAG_FILES = sorted((PROJECT_ROOT / "dags").glob("*.py"))
WEBHOOK_SECRET = "test-secret-for-pbi-jk"


@pytest.fixture(scope="module")
def smtp():
    with MailSink(SMTP_PORT) as sink:
        yield sink


@pytest.fixture(scope="module")
def webhook_receiver():
    """Answers 503 to the first call (the sender must retry), then checks signatures and says 200."""
    from dtsen.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

    calls: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's hook name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            valid = verify(
                WEBHOOK_SECRET.encode(), self.headers[TIMESTAMP_HEADER], body, self.headers[SIGNATURE_HEADER]
            )
            calls.append({"path": self.path, "valid": valid, "body": json.loads(body)})
            self.send_response(503 if len(calls) == 1 else (200 if valid else 401))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()


@pytest.fixture(scope="module")
def airflow_round(scratch_database, smtp, webhook_receiver, tmp_path_factory):
    """Airflow's metadata DB migrated; a warehouse, landing zone and subscribers of this module's own."""
    work = tmp_path_factory.mktemp("airflow-round")
    shutil.copytree(SAMPLE_DIR / "landing", work / "landing")
    url, calls = webhook_receiver
    subscribers = json.loads((PROJECT_ROOT / "config" / "subscribers.json").read_text())
    subscribers["programs"]["pbi_jk"]["webhooks"] = [
        {"url": f"{url}/dtsen", "secret_env": "DTSEN_TEST_PBI_SECRET"}
    ]
    (work / "subscribers.json").write_text(json.dumps(subscribers))
    env = {
        "DTSEN_DATABASE_URL": scratch_database("airflow"),
        "DTSEN_LANDING_ROOT": str(work / "landing"),
        "DTSEN_PUBLISH_ROOT": str(work / "publish"),
        "DTSEN_RAW_ROOT": str(work / "raw"),
        "DTSEN_SUBSCRIBERS": str(work / "subscribers.json"),
        "DTSEN_TEST_PBI_SECRET": WEBHOOK_SECRET,
        "DTSEN_CALLBACK_ALLOWLIST": url.removeprefix("http://"),  # the webhook receiver, on loopback
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        migrate_airflow_db(AIRFLOW_ENV)
        import psycopg

        from dtsen.warehouse import engine
        from dtsen.warehouse.migrate import migrate

        with psycopg.connect(engine.libpq_conninfo(env["DTSEN_DATABASE_URL"])) as conn:
            migrate(conn)  # set-up, as `dtsen db migrate` or the compose init job: rounds do not migrate
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(PROJECT_ROOT / "dags")), work, calls


HEAVY_MODULES = ("great_expectations", "pandas", "pyarrow", "rapidfuzz", "numpy", "sklearn")


def test_dags_parse_without_touching_the_warehouse_or_importing_heavy_modules(tmp_path):
    """Each DAG file parses with a warehouse URL that cannot connect, starts no local cluster, and
    imports none of the heavy libraries the tasks need (parse time itself is measured in bench/)."""
    script = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; b = DagBag(dag_folder=sys.argv[1]); "
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]; "
        "print('RESULT', len(b.dags), ','.join(heavy) or '-', repr(b.import_errors))"
    )
    env = (
        os.environ
        | AIRFLOW_ENV
        | {
            "DTSEN_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/unreachable",
            "DTSEN_HOME": str(tmp_path / "home"),
        }
    )
    for path in DAG_FILES:
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")][-1]
        dags, heavy, errors = result.split(maxsplit=3)[1:]
        assert errors.strip() == "{}" and int(dags) == 1, (path.name, errors)
        assert heavy == "-", (path.name, heavy)
    assert not (tmp_path / "home").exists()  # no private cluster was started


def test_dags_have_owners_tags_retries_and_docs(airflow_round):
    bag, _, _ = airflow_round
    assert set(bag.dags) == {"dtsen_update_round", "dtsen_notify_programs", "dtsen_ranking_model"}
    assert not bag.import_errors
    for dag in bag.dags.values():
        assert dag.tags and "dtsen" in dag.tags and len(dag.doc_md) > 200
        for task in dag.tasks:
            assert task.owner == "dtsen-data-ops" and task.retries >= 1, task.task_id
            assert task.doc_md and len(task.doc_md) > 30, task.task_id
            assert task.on_failure_callback, task.task_id
    update = bag.dags["dtsen_update_round"]
    assert update.max_active_runs == 1
    assert {
        "round_id",
        "landing_root",
        "dry_run",
        "approve_drift",
        "approval_reason",
        "quality_gate_threshold",
    } <= set(update.params.keys())
    assert [a.uri.rstrip("/") for a in update.get_task("publish").outlets] == [
        "dtsen://versions"
    ]  # Airflow adds "/"


def test_the_update_dag_is_exactly_the_rounds_step_list_in_order(airflow_round):
    from dtsen.round import NOTIFY_PROGRAMS, STEPS

    bag, _, _ = airflow_round
    dag = bag.dags["dtsen_update_round"]
    assert dag.task_ids == [step.name for step in STEPS]
    for previous, step in zip(STEPS, STEPS[1:], strict=False):
        # the per-submission step also reads open_round's list of submissions (what it is mapped over)
        mapped_over = {"open_round"} if step.per_submission else set()
        assert dag.get_task(step.name).upstream_task_ids == {previous.name} | mapped_over, step.name
        assert dag.get_task(step.name).doc_md == step.doc
    assert type(dag.get_task("stage_and_validate")).__name__.endswith(
        "MappedOperator"
    )  # one task per submission
    assert bag.dags["dtsen_notify_programs"].task_ids == [NOTIFY_PROGRAMS.name]


def test_only_data_errors_fail_a_task_at_once_and_a_bug_is_retried():
    from airflow.sdk.exceptions import AirflowFailException

    from dtsen.airflow_support import run_step
    from dtsen.errors import DataError
    from dtsen.round import Step

    def bad_input(_ctx):
        raise DataError("the round folder is missing")

    def bug(_ctx):
        return {}["missing key"]

    with pytest.raises(AirflowFailException, match="the round folder is missing"):
        run_step(Step("x", bad_input, "doc"), None)
    with pytest.raises(KeyError):  # not an AirflowFailException: Airflow retries it
        run_step(Step("y", bug, "doc"), None)


def _tries(run, task_id: str) -> int:
    return next(ti.try_number for ti in run.get_task_instances() if ti.task_id == task_id)


def _digits_or_names_leak(messages) -> list[str]:
    with open(
        SAMPLE_DIR / "landing" / "2026-Q1" / "pemda" / "3674-2026Q1-01" / "anggota.csv", encoding="utf-8"
    ) as fh:
        names = [
            row["nama"] for _, row in zip(range(40), csv.DictReader(fh), strict=False) if len(row["nama"]) > 3
        ]
    assert names
    leaks = []
    for message in messages:
        text = message["Subject"] + message.get_body(preferencelist=("html", "plain")).get_content()
        leaks += re.findall(r"\d{16}", text) + [n for n in names if n and n in text]
    return leaks


def test_a_full_round_runs_through_airflow_and_notifies_everyone_once(airflow_round, smtp):
    bag, work, calls = airflow_round
    smtp.take()
    run = bag.dags["dtsen_update_round"].test(run_conf={"round_id": "2026-Q1"})
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert sum(1 for (task, _), s in states.items() if task == "stage_and_validate" and s == "success") == 6
    manifest = json.loads((work / "publish" / "versions" / "1" / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["round_id"] == "2026-Q1"
    feedback = sorted(
        p.parent.name for p in (work / "publish" / "feedback" / "2026-Q1").glob("*/ringkasan.json")
    )
    assert len(feedback) == 6 and all(
        (work / "publish" / "feedback" / "2026-Q1" / f / "ditolak.csv").exists() for f in feedback
    )
    regions = smtp.take()
    assert sorted(m["To"] for m in regions) == [
        f"dinsos.{k}@pemda.example" for k in ("3674", "6213", "6402", "9407")
    ]
    assert all("Hasil kiriman putaran 2026-Q1" in m["Subject"] for m in regions)

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        extras = [e.extra for e in session.query(AssetEvent).all()]
    assert {"version": 1, "round_id": "2026-Q1"} in extras

    notify = bag.dags["dtsen_notify_programs"].test(run_conf={"version": 1})
    assert notify.state == "success"
    programs = smtp.take()
    assert sorted(m["To"] for m in programs) == sorted(
        [
            "pbi-jk@bpjs-kesehatan.example",
            "sekolah-rakyat@kemensos.example",
            "pkh@kemensos.example",
            "bpnt@kemensos.example",
        ]
    )
    body = next(m for m in programs if m["To"].startswith("pbi-jk")).get_body().get_content()
    assert (
        f"{manifest['programs']['pbi_jk']['recipients']:,}".replace(",", ".") in body  # Indonesian: 1.908
        and manifest["files"]["anggota.parquet"] in body
    )
    assert [c["valid"] for c in calls] == [True, True]  # refused once with 503, retried, delivered
    payload = calls[-1]["body"]
    assert payload["version"] == 1 and payload["program"] == "pbi_jk"
    assert payload["recipients"] == manifest["programs"]["pbi_jk"]["recipients"]
    assert payload["files"]["programs/pbi_jk.parquet"] == manifest["files"]["programs/pbi_jk.parquet"]
    assert _digits_or_names_leak(regions + programs) == []
    for message in regions + programs:  # a resend after a crash would carry the same ids
        assert message["Message-ID"].endswith("@dtsen>") and message["X-DTSEN-Delivery-Id"], message[
            "Subject"
        ]

    again = bag.dags["dtsen_notify_programs"].test(run_conf={"version": 1})
    assert again.state == "success" and smtp.take() == [] and len(calls) == 2  # each notice goes once


def test_a_failing_task_emails_data_ops(airflow_round, smtp):
    bag, _, _ = airflow_round
    smtp.take()
    run = bag.dags["dtsen_update_round"].test(run_conf={"round_id": "2031-Q1"})  # no such round folder
    assert run.state == "failed"
    assert _tries(run, "open_round") == 1  # a data error is not retried
    sent = smtp.take()
    assert [m["To"] for m in sent] == ["dataops@dtsen.example"]
    assert sent[0]["Subject"] == "[DTSEN] FAILED dtsen_update_round.open_round"
    assert "LandingError" in sent[0].get_body().get_content()
    import psycopg

    from dtsen.warehouse import engine

    with psycopg.connect(
        engine.libpq_conninfo(os.environ["DTSEN_DATABASE_URL"])
    ) as conn:  # a typo registers nothing
        assert conn.execute("SELECT count(*) FROM ingest.round WHERE round_id = '2031-Q1'").fetchone()[0] == 0


def test_approve_drift_on_the_trigger_form_publishes_a_drifted_candidate_approved_by_the_triggering_user(
    airflow_round, smtp, tmp_path, monkeypatch
):
    """Round 2026-Q2 ranked with PBI JK cut to desil 1-2 drifts in every regency. Triggered with
    approve_drift and a reason by one of DTSEN_APPROVERS (dag.test()'s triggering user is `dag_test`),
    it is approved by that user, never waits at the approval task, and is published; without a reason
    the form is refused at once. (A drifted candidate without approve_drift waits for a person at the
    approval task: tests/test_cockpit.py, tests/test_approval_accountability.py.)"""
    bag, work, _ = airflow_round
    dag = bag.dags["dtsen_update_round"]
    assert (
        dag.test(run_conf={"round_id": "2026-Q1"}).state == "success"
    )  # rounds run in order (a no-op if done)
    programs = json.loads((PROJECT_ROOT / "config" / "programs.json").read_text())
    next(p for p in programs["programs"] if p["id"] == "pbi_jk")["desil_max"] = 2
    (tmp_path / "programs.json").write_text(json.dumps(programs))
    monkeypatch.setenv("DTSEN_PROGRAMS", str(tmp_path / "programs.json"))
    monkeypatch.setenv("DTSEN_APPROVERS", "dag_test")
    smtp.take()
    refused = dag.test(run_conf={"round_id": "2026-Q2", "approve_drift": True})  # no reason given
    assert refused.state == "failed" and _tries(refused, "open_round") == 1  # a bad form: no retries
    approved = dag.test(
        run_conf={
            "round_id": "2026-Q2",
            "approve_drift": True,
            "approval_reason": "PBI JK narrowed by decree (test)",
        }
    )
    states = {ti.task_id: str(ti.state) for ti in approved.get_task_instances() if ti.map_index < 0}
    assert approved.state == "success" and states["approval"] == "success" and states["publish"] == "success"
    manifest = json.loads((work / "publish" / "versions" / "2" / "manifest.json").read_text())
    assert manifest["audit"] == {"success": False, "approved_by": "dag_test"}
    import psycopg

    from dtsen.warehouse import engine

    with psycopg.connect(engine.libpq_conninfo(os.environ["DTSEN_DATABASE_URL"])) as conn:
        decisions = conn.execute(
            "SELECT outcome, decided_by, channel, reason FROM publish.approval_decision WHERE version = 2"
        ).fetchall()
    assert decisions == [("APPROVED", "dag_test", "airflow-trigger", "PBI JK narrowed by decree (test)")]
    assert not [m for m in smtp.take() if "Approval needed" in m["Subject"]]  # nobody was asked


def test_the_approval_task_waits_for_a_person_and_rejects_when_no_one_answers_in_time(
    airflow_round, monkeypatch
):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    bag, _, _ = airflow_round
    task = bag.dags["dtsen_update_round"].get_task("approval")
    assert isinstance(task, ApprovalOperator)
    assert task.defaults == ["Reject"] and task.response_timeout.total_seconds() == 7 * 24 * 3600
    assert list(task.params.keys()) == ["reason"]  # the person is asked why; the round's form is not shown
    monkeypatch.setenv("DTSEN_APPROVAL_TIMEOUT_HOURS", "2")
    from dtsen.airflow_support import approval_task
    from dtsen.round import STEP

    assert approval_task(STEP["approval"]).response_timeout.total_seconds() == 2 * 3600


@pytest.mark.usefixtures("airflow_round")  # Airflow's metadata and this module's environment
def test_which_identical_submission_is_the_duplicate_does_not_depend_on_airflow_task_order(
    scratch_database, tmp_path, monkeypatch
):
    """Three pairs of byte-identical submissions; in each the original is the earlier delivery (for
    the last pair, delivered at the same time, the lower id). dag.test() runs the mapped
    stage_and_validate tasks in the order of a set, so each of the two runs (each in a warehouse of
    its own) takes them in an order of its own; both must find the same duplicates."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.factories import KELUARGA, make_submission

    early, late = "2026-05-10T08:00:00+07:00", "2026-05-14T09:30:00+07:00"
    landing = tmp_path / "landing"
    pairs = {  # (first id, its submitted_at), (second id, its submitted_at), the duplicate
        1: (("3273-2026Q2-01", late), ("3273-2026Q2-02", early), "3273-2026Q2-01"),
        2: (("3273-2026Q2-03", early), ("3273-2026Q2-04", late), "3273-2026Q2-04"),
        3: (("3273-2026Q2-05", late), ("3273-2026Q2-06", late), "3273-2026Q2-06"),
    }
    for n, (first, second, _) in pairs.items():
        files = {"keluarga.csv": KELUARGA.replace(b"2026-05-01", f"2026-05-0{n + 1}".encode())}
        for sub_id, at in (first, second):
            make_submission(landing, sub_id, data_files=files, submitted_at=at)
    expected = {dup: "DUPLICATE_SUBMISSION" for _, _, dup in pairs.values()}
    monkeypatch.setenv("DTSEN_LANDING_ROOT", str(landing))
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    # a DAG of its own: dag.test(run_conf) leaves the conf in the DAG's params for later runs
    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["dtsen_update_round"]
    later_steps = "(?!open_round$|stage_and_validate$).*"  # marked done without running: not this test's
    import psycopg

    from dtsen.warehouse import engine

    orders = []
    for attempt in (1, 2):
        url = scratch_database(f"dup_order_{attempt}")
        monkeypatch.setenv("DTSEN_DATABASE_URL", url)
        run = dag.test(run_conf={"round_id": "2026-Q2"}, mark_success_pattern=later_steps)
        assert run.state == "success"
        mapped = [ti for ti in run.get_task_instances() if ti.task_id == "stage_and_validate"]
        orders.append([ti.map_index for ti in sorted(mapped, key=lambda ti: ti.start_date)])
        with psycopg.connect(engine.libpq_conninfo(url)) as conn:
            found = dict(
                conn.execute(
                    "SELECT submission_id, reason_code FROM ingest.submission WHERE reason_code IS NOT NULL"
                ).fetchall()
            )
        assert found == expected, orders
