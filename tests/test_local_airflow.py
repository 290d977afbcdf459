"""The local Airflow path (`scripts/airflow`, dtsen_dev.local_airflow) as data ops use it: its mail
sink, the DAGs' first runs, `--port`, the registry API's key, Ctrl-C, `dtsen-dev generate`; and, under
the real scheduler, a round triggered from the form in headless Chromium, approved on the Required
Actions page and announced to the program owners."""

from __future__ import annotations

import asyncio
import contextlib
import email
import json
import logging
import os
import re
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import psycopg
import pytest

from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from dtsen.warehouse import engine
from dtsen_dev.browser import CHROMIUM, chromium, open_page, wait_http
from dtsen_dev.local_airflow import (
    MailSink,
    airflow_env,
    free_port,
    local_disclosure_key,
    run_until_stopped,
    session_members,
    standalone_env,
)
from tests.factories import start_webhook_receiver


def _send(port: int, to: str, subject: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "dtsen@dtsen.example", to, subject
    message.set_content("isi")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message)


def test_the_mail_sink_keeps_each_message_in_its_folder_even_when_the_folder_exists_empty(tmp_path):
    folder = tmp_path / "mail"
    folder.mkdir()  # as a first run of scripts/airflow left it
    with MailSink(free_port(), folder=folder) as sink:
        _send(sink.port, "dinsos.3674@pemda.example", "Umpan balik")
    kept = list((folder / "new").iterdir())
    assert len(kept) == 1
    assert email.message_from_bytes(kept[0].read_bytes(), policy=policy.default)["Subject"] == "Umpan balik"


def test_the_mail_sink_logs_nothing_about_connections(caplog):
    with caplog.at_level(logging.INFO), MailSink(free_port()) as sink:
        _send(sink.port, "dataops@dtsen.example", "Round failed")
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10):
            pass  # a client that hangs up without QUIT: "Connection lost during _handle_client()"
        time.sleep(0.5)  # the server notices the hang-up on its own thread
    assert len(sink.messages) == 1
    assert [r.getMessage() for r in caplog.records if r.name.startswith("mail.")] == []


CHECK_DAGS = """
import datetime as dt, json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import LazyDeserializedDAG
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
seen = {}
for dag_id, dag in bag.dags.items():
    # what the dag-processor stores and the scheduler asks when the DAG first appears
    first = LazyDeserializedDAG.from_dag(dag).next_dagrun_info(last_automated_run_info=None)
    seen[dag_id] = {
        "paused_upon_creation": dag.is_paused_upon_creation,
        "catchup": dag.catchup,
        "first_scheduled_run_in_the_past": bool(first and first.run_after < dt.datetime.now(dt.UTC)),
    }
print("RESULT " + json.dumps(seen))
"""


def test_both_dags_start_unpaused_and_the_first_scheduled_round_is_not_a_catch_up(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CHECK_DAGS, str(PROJECT_ROOT / "dags")],
        env=os.environ | airflow_env(free_port(), home=tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert set(seen) == {"dtsen_update_round", "dtsen_notify_programs", "dtsen_ranking_model"}
    for dag_id, dag in seen.items():
        # paused, the notify DAG would drop the asset event of a version published meanwhile
        assert dag["paused_upon_creation"] is False, dag_id
        assert dag["catchup"] is False, dag_id
        assert dag["first_scheduled_run_in_the_past"] is False, dag_id


def test_port_moves_the_ui_the_tasks_execution_api_and_the_links_in_emails(tmp_path):
    port = 18093
    env = os.environ | standalone_env(port, free_port(), home=tmp_path)
    script = (
        "from airflow.configuration import conf; from dtsen.airflow_support import airflow_link; "
        "print(conf.get('api', 'port')); print(conf.get('core', 'execution_api_server_url')); "
        "print(airflow_link('dags', 'dtsen_update_round'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [
        str(port),
        f"http://localhost:{port}/execution/",
        f"http://localhost:{port}/dags/dtsen_update_round",
    ]


def test_the_local_disclosure_key_is_made_once_kept_private_and_the_environments_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("DTSEN_API_DISCLOSURE_KEY", raising=False)
    made = local_disclosure_key(tmp_path)
    assert len(made) >= 32 and local_disclosure_key(tmp_path) == made
    assert (tmp_path / "api-disclosure-key").stat().st_mode & 0o077 == 0
    monkeypatch.setenv("DTSEN_API_DISCLOSURE_KEY", "the-deployments-own-key-0123456789")
    assert local_disclosure_key(tmp_path) == "the-deployments-own-key-0123456789"


def test_the_local_api_signing_key_is_an_ed25519_key_made_once_and_kept_private(tmp_path, monkeypatch):
    from dtsen.api.signing import Signer
    from dtsen_dev.local_airflow import local_api_signing_key

    monkeypatch.delenv("DTSEN_API_SIGNING_KEY", raising=False)
    made = local_api_signing_key(tmp_path)
    assert local_api_signing_key(tmp_path) == made
    assert (tmp_path / "api-signing-key").stat().st_mode & 0o077 == 0
    assert Signer(made, 300).public_key_text()  # a key the API starts with


# A process tree shaped like airflow standalone's: a child that starts workers, one of them in a process
# group of its own (as Airflow's task supervisor puts each task), one ignoring SIGTERM; it writes their pids.
TREE = """
import os, signal, subprocess, sys, time
sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]
workers = [subprocess.Popen(sleeper) for _ in range(3)]
workers.append(subprocess.Popen(sleeper, process_group=0))
workers.append(subprocess.Popen(stubborn))
with open(sys.argv[1], "w") as out:
    out.write(" ".join(str(p) for p in [os.getpid(), *(w.pid for w in workers)]))
time.sleep(600)
"""

WRAPPER = """
import sys
from dtsen_dev.local_airflow import run_until_stopped
sys.exit(run_until_stopped([sys.executable, "-c", sys.argv[1], sys.argv[2]], grace=3))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_every_process_started_and_waits_for_them(tmp_path, signum):
    pids_file = tmp_path / "pids"
    wrapper = subprocess.Popen([sys.executable, "-c", WRAPPER, TREE, str(pids_file)])
    deadline = time.monotonic() + 60
    while not (pids_file.exists() and len(pids_file.read_text().split()) == 6):
        assert time.monotonic() < deadline and wrapper.poll() is None, "the tree never started"
        time.sleep(0.1)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(_alive(p) for p in pids)
    wrapper.send_signal(signum)
    assert wrapper.wait(timeout=60) == 128 + signum
    assert [p for p in pids if _alive(p)] == []  # gone before the wrapper returned
    assert session_members(pids[0]) == []


def test_run_until_stopped_returns_the_commands_own_exit_code():
    assert run_until_stopped([sys.executable, "-c", "raise SystemExit(7)"]) == 7


def test_dtsen_dev_generate_takes_the_generators_options_and_help(tmp_path):
    cli = Path(sys.executable).parent / "dtsen-dev"
    helped = subprocess.run([cli, "generate", "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "--persons" in helped.stdout
    made = subprocess.run(
        [cli, "generate", "--persons", "40", "--rounds", "1", "--out", str(tmp_path / "world")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    assert (tmp_path / "world" / "landing" / "2026-Q1").is_dir()


@pytest.fixture(scope="module")
def sample_q1_published(scratch_database, tmp_path_factory):
    """A warehouse of this module's own where the sample's 2026-Q1 is published as version 1 (through
    the step list: the UI test needs a current version for the next round's candidate to drift from)."""
    from dtsen.round import RoundContext, run_round

    work = tmp_path_factory.mktemp("local-airflow")
    shutil.copytree(SAMPLE_DIR / "landing", work / "landing")
    env = {
        "DTSEN_DATABASE_URL": scratch_database("local_airflow"),
        "DTSEN_LANDING_ROOT": str(work / "landing"),
        "DTSEN_PUBLISH_ROOT": str(work / "publish"),
        "DTSEN_RAW_ROOT": str(work / "raw"),
        "DTSEN_OUTBOX": str(work / "outbox"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("DTSEN_API_DISCLOSURE_KEY", raising=False)
        patch.delenv("DTSEN_CALLBACK_SIGNING_KEY", raising=False)
        run_round(RoundContext.create("2026-Q1"))
        yield work, env


def _api_subscription(warehouse: str, client_id: str, program: str, callback: str) -> str:
    from dtsen.api.clients import create_client
    from dtsen.api.subscriptions import subscribe
    from dtsen.programs import load_programs

    # the API subscribes only where the signing key is set; whoever signs later needs it too
    with psycopg.connect(engine.libpq_conninfo(warehouse)) as conn, pytest.MonkeyPatch.context() as patch:
        patch.setenv("DTSEN_CALLBACK_SIGNING_KEY", "the-api-containers-key")
        patch.setenv("DTSEN_CALLBACK_ALLOWLIST", "127.0.0.1")  # the tests' receivers, on loopback
        known = {p.id for p in load_programs().programs}
        create_client(conn, client_id, client_id, [program], ["kode_wilayah", "desil"], 60, known)
        (made,) = subscribe(conn, client_id, [program], callback)
        conn.commit()
    return made.code


@pytest.mark.slow
def test_without_the_signing_key_the_other_subscribers_are_notified_and_the_failure_names_it(
    sample_q1_published,
):
    from dtsen.api.subscriptions import unsubscribe
    from dtsen.errors import DataError
    from dtsen.notify.deliver import notify_programs
    from dtsen.notify.subscribers import load_subscribers

    _, env = sample_q1_published
    code = _api_subscription(env["DTSEN_DATABASE_URL"], "no-key-client", "pkh", "http://127.0.0.1:9/never")
    sent = []
    try:
        with psycopg.connect(engine.libpq_conninfo(env["DTSEN_DATABASE_URL"])) as conn:
            with pytest.raises(DataError) as failed:
                notify_programs(conn, 1, load_subscribers(), sent.append)
    finally:
        with psycopg.connect(engine.libpq_conninfo(env["DTSEN_DATABASE_URL"])) as conn:
            unsubscribe(conn, "no-key-client", [code])
            conn.commit()
    owners = {a for p in load_subscribers().programs.values() for a in p.emails}
    assert {a for e in sent for a in e.to} == owners  # every program owner still got version 1
    message = str(failed.value)
    assert "DTSEN_CALLBACK_SIGNING_KEY not set" in message
    assert "no-key-client for pkh" in message and "dtsen api" in message


def _mail(folder: Path) -> list:
    new = folder / "new"
    if not new.is_dir():
        return []
    return [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in sorted(new.iterdir())]


def _text(message) -> str:
    return message.get_body(("plain", "html")).get_content()


async def _type(page, selector: str, text: str) -> None:
    """Type into a field as a person does (the UI's inputs are React-controlled: setting .value is not enough)."""
    await page.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
    await page.call("Input.insertText", text=text)


class LocalAirflow:
    """`scripts/airflow --port N` running, with what a test needs to watch it."""

    def __init__(self, proc: subprocess.Popen, base: str, home: Path, log: Path) -> None:
        self.proc, self.base, self.home, self.log = proc, base, home, log

    def password(self) -> str:
        generated = self.home / "airflow" / "simple_auth_manager_passwords.json.generated"
        return json.loads(generated.read_text())["admin"]

    def runs(self) -> list[tuple[str, str, str]]:
        with contextlib.closing(sqlite3.connect(self.home / "airflow" / "airflow.db")) as db:
            return db.execute("SELECT dag_id, run_type, state FROM dag_run ORDER BY id").fetchall()

    def situation(self) -> str:
        """What to show when the test fails: the runs, their tasks, the end of Airflow's output."""
        with contextlib.closing(sqlite3.connect(self.home / "airflow" / "airflow.db")) as db:
            tasks = db.execute("SELECT dag_id, task_id, map_index, state FROM task_instance").fetchall()
        return f"runs {self.runs()}\ntasks {tasks}\n{self.log.read_text()[-3000:]}"

    def wait_for_mail(self, wanted, seconds: float) -> list:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [m for m in _mail(self.home / "mail") if wanted(m)]
            if found:
                return found
            assert self.proc.poll() is None, f"scripts/airflow ended:\n{self.situation()}"
            time.sleep(2)
        raise AssertionError(f"no such mail within {seconds}s:\n{self.situation()}")


async def _trigger_round(debug_port: int, airflow: LocalAirflow, round_id: str) -> str:
    async with open_page(debug_port) as page:
        await page.goto(f"{airflow.base}/dags/dtsen_update_round")
        await page.wait_for("Sign in", seconds=60)
        await _type(page, "input[name=username]", "admin")
        await _type(page, "input[name=password]", airflow.password())
        await page.click_text("Sign in")
        await page.wait_for("dtsen_update_round", "Trigger", seconds=120)  # the DAG parsed
        await page.click_text("Trigger")
        await page.wait_for("Run Parameters", "round_id")
        await _type(page, "#element_round_id", round_id)
        clicked = await page.evaluate(
            "(() => { const b = [...document.querySelectorAll('[role=dialog] button')]"
            ".filter(b => b.innerText.trim() === 'Trigger').pop(); if (!b) return false; b.click(); return true; })()"
        )
        assert clicked, "the trigger form has no Trigger button"
        await page.wait_for("manual__", seconds=60)  # the new run's page
        return await page.text()


async def _approve(debug_port: int, link: str, reason: str) -> str:
    async with open_page(debug_port) as page:  # the session cookie from the trigger is still there
        await page.goto(link)
        await page.wait_for("Approve", "Reason", seconds=120)
        await _type(page, "#element_reason", reason)
        await page.click_text("Approve")
        await asyncio.sleep(1)
        return await page.text()


@pytest.mark.slow
@pytest.mark.timeout(2400)  # Airflow's start, a round and the announcement on a busy 2-core runner
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test installs it)")
def test_a_round_triggered_from_the_form_and_approved_in_the_ui_is_announced_to_program_owners(
    sample_q1_published,
):
    work, env = sample_q1_published
    strict = work / "audit-strict.json"  # any drift blocks 2026-Q2's candidate: it waits for approval
    audit = json.loads((PROJECT_ROOT / "config" / "audit.json").read_text())
    strict.write_text(json.dumps(audit | {"drift_max_share": 0.0, "drift_min_base": 1}))
    receiver, receiver_url, calls = start_webhook_receiver()
    code = _api_subscription(env["DTSEN_DATABASE_URL"], "ui-client", "pbi_jk", f"{receiver_url}/dtsen")
    port, home, log = free_port(), work / "home", work / "scripts-airflow.log"
    started = subprocess.Popen(
        [PROJECT_ROOT / "scripts" / "airflow", "--port", str(port)],
        env={  # as a person's shell has it: none of the other tests' Airflow settings, no key, no approvers
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AIRFLOW")
            and k
            not in (
                "DTSEN_API_DISCLOSURE_KEY",
                "DTSEN_CALLBACK_SIGNING_KEY",
                "DTSEN_API_SIGNING_KEY",
                "DTSEN_APPROVERS",
            )
        }
        | {"DTSEN_HOME": str(home), "DTSEN_AUDIT_CONFIG": str(strict)},
        stdout=open(log, "w"),  # noqa: SIM115 (closed with the process)
        stderr=subprocess.STDOUT,
    )
    airflow = LocalAirflow(started, f"http://localhost:{port}", home, log)
    try:
        wait_http(f"{airflow.base}/api/v2/version", 600)
        with chromium() as debug_port:
            asyncio.run(_trigger_round(debug_port, airflow, "2026-Q2"))
            asking = airflow.wait_for_mail(lambda m: "Approval needed" in m["Subject"], 1200)
            body = _text(asking[0])
            links = re.findall(r"http://\S+/required_actions", body)
            assert links and links[0].startswith(f"{airflow.base}/dags/dtsen_update_round/runs/"), body
            asyncio.run(_approve(debug_port, links[0], "drift expected: UI test"))
        announced = airflow.wait_for_mail(lambda m: m["To"] == "pbi-jk@bpjs-kesehatan.example", 600)
        assert "Versi 2" in announced[0]["Subject"]
        deadline = time.monotonic() + 120  # the API subscriber is called in the same task, after the emails
        while not calls and time.monotonic() < deadline:
            time.sleep(1)
        from dtsen.api.subscriptions import secret_of
        from dtsen.notify.webhook import verify

        key = (home / "callback-signing-key").read_text().strip()
        assert len(calls) == 1, airflow.situation()
        call = calls[0]
        assert verify(secret_of(code, key.encode()), call["timestamp"], call["body"], call["signature"])
        # no catch-up run of the previous quarter; the announcement ran on the asset event
        assert [(dag, kind) for dag, kind, _ in airflow.runs()] == [
            ("dtsen_update_round", "manual"),
            ("dtsen_notify_programs", "asset_triggered"),
        ], airflow.situation()
        output = log.read_text()
        assert "Connection lost" not in output and "Peer:" not in output  # the mail sink is quiet
        standalone = _children(started.pid)  # `airflow standalone`, leader of the session of its components
        assert len(standalone) == 1 and len(session_members(standalone[0])) > 5
    finally:
        receiver.shutdown()
        if started.poll() is None:
            started.send_signal(signal.SIGINT)  # Ctrl-C
        started.wait(timeout=120)
    assert session_members(standalone[0]) == []  # scheduler, workers, api-server, ...: all gone


def _children(pid: int) -> list[int]:
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
