"""Airflow on this machine: the environment for the project's DAGs, a local SMTP sink, and the rounds
of the main job run through the real Airflow runtime (`dag.test()`, in process).

Airflow keeps its metadata in SQLite under DTSEN_HOME/airflow; the warehouse is the project's own
(DTSEN_DATABASE_URL or the private cluster). Airflow is configured from the environment, so
`airflow_env()` must be applied before Airflow is first imported.
"""

from __future__ import annotations

import contextlib
import email
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from email import policy
from pathlib import Path

from dtsen.config import settings
from dtsen.paths import PROJECT_ROOT

LOCAL_SMTP_PORT = 2525


def airflow_env(smtp_port: int = LOCAL_SMTP_PORT, home: Path | None = None) -> dict[str, str]:
    """Airflow settings for the project: its DAGs, no examples, SQLite metadata under `home`
    (default DTSEN_HOME/airflow), the SMTP connection to a local sink on `smtp_port`."""
    return {
        "AIRFLOW_HOME": str(home or settings().home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        "AIRFLOW_CONN_DTSEN_SMTP": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 1},
            }
        ),
    }


def migrate_airflow_db(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ | env,
    )


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class MailSink:
    """A local SMTP server that keeps what it receives (aiosmtpd), for trials and the main job."""

    port: int = LOCAL_SMTP_PORT
    messages: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def __enter__(self) -> MailSink:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()

    def take(self) -> list:
        """The messages received since the last take."""
        taken, self.messages = self.messages, []
        return taken


@contextlib.contextmanager
def _output_to(path: Path):
    """Send this process's stdout to `path` at the file-descriptor level (Airflow's task logs write
    to the original stream, not to sys.stdout), so the main job prints only its summary."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def run_round_through_airflow(round_id: str) -> tuple[str, dict[str, str], int | None]:
    """dtsen_update_round for `round_id`, then dtsen_notify_programs for the version it published.
    Returns the run's state, each task's state, and the published version (None if none)."""
    from airflow.dag_processing.dagbag import DagBag

    log_file = Path(os.environ.get("AIRFLOW_HOME", ".")) / "dag-test.log"
    with _output_to(log_file):
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAGs failed to import: {sorted(bag.import_errors)}")
    with _output_to(log_file):
        run = bag.dags["dtsen_update_round"].test(run_conf={"round_id": round_id})
    states = {}
    for ti in run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = str(ti.state)
    version = published_version(round_id) if states.get("publish") == "success" else None
    if version is not None:
        with _output_to(log_file):
            notify = bag.dags["dtsen_notify_programs"].test(run_conf={"version": version})
        states["dtsen_notify_programs.notify_programs"] = str(notify.state)
    return str(run.state), states, version


def published_version(round_id: str) -> int | None:
    from dtsen.warehouse import engine

    with engine.connect() as conn:
        found = conn.execute(
            "SELECT published_version FROM ingest.round WHERE round_id = %s", (round_id,)
        ).fetchone()
    return found[0] if found else None


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens there, else a port the system picks."""
    if preferred and port_is_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mail_lines(messages: list) -> list[str]:
    return [f"  to {m['To']:<36} {m['Subject']}" for m in messages]


def standalone(port: int = 8080) -> int:
    """`airflow standalone` for this project: its DAGs and connections, the local warehouse, and a
    local SMTP sink whose mail is kept as files (a Maildir) under DTSEN_HOME/mail."""
    from dtsen.warehouse import engine
    from dtsen.warehouse.migrate import migrate

    cfg = settings()
    with engine.connect() as conn:  # set-up: rounds refuse a warehouse whose migrations are behind
        migrate(conn)
    smtp_port = free_port(LOCAL_SMTP_PORT)
    env = (
        os.environ
        | airflow_env(smtp_port)
        | {
            "DTSEN_DATABASE_URL": engine.database_url(),  # the tasks use exactly this warehouse
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            # standalone starts `airflow api-server`, `airflow scheduler`, ... by name: this venv's first
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    migrate_airflow_db(env)
    mail = cfg.home / "mail"
    mail.mkdir(parents=True, exist_ok=True)
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{smtp_port}",
            "-c",
            "aiosmtpd.handlers.Mailbox",
            str(mail),
        ],
        env=env,
    )
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    print(
        f"Airflow UI: http://localhost:{port}  (user admin; its password is printed below by Airflow and kept "
        f"in {passwords})"
    )
    print(
        f"DAGs from {env['AIRFLOW__CORE__DAGS_FOLDER']}; warehouse {engine.describe_target(env['DTSEN_DATABASE_URL'])}"
    )
    print(f"mail goes to a local SMTP sink on 127.0.0.1:{smtp_port}, kept in {mail}/new/")
    try:
        return subprocess.run([sys.executable, "-m", "airflow", "standalone"], env=env).returncode
    finally:
        sink.terminate()
