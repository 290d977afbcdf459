"""The local Airflow path (`scripts/airflow`, dtsen_dev.local_airflow) as data ops use it: its mail
sink, the DAGs' first runs, `--port`, the registry API's key, Ctrl-C, `dtsen-dev generate`; and, under
the real scheduler, a round triggered from the form in headless Chromium, approved on the Required
Actions page and announced to the program owners."""

from __future__ import annotations

import email
import json
import logging
import os
import signal
import smtplib
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from dtsen.paths import PROJECT_ROOT
from dtsen_dev.local_airflow import (
    MailSink,
    airflow_env,
    free_port,
    local_disclosure_key,
    run_until_stopped,
    session_members,
    standalone_env,
)


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
    assert set(seen) == {"dtsen_update_round", "dtsen_notify_programs"}
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
