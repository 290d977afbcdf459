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
import logging
import mailbox
import os
import signal
import socket
import subprocess
import sys
import time
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


def maildir(folder: Path) -> Path:
    """`folder` as a Maildir ready to receive: its tmp/, new/ and cur/ exist (`mailbox.Maildir` makes
    them only when the folder itself is new, and refuses every message in an empty existing one)."""
    for sub in ("tmp", "new", "cur"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class MailSink:
    """A local SMTP server that keeps what it receives (aiosmtpd), for trials and the main job; with
    `folder`, each message is also kept as a file there (a Maildir: new/ holds what arrived)."""

    port: int = LOCAL_SMTP_PORT
    messages: list = field(default_factory=list)
    folder: Path | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        if self.folder is not None:
            mailbox.Maildir(self.folder).add(envelope.content)
        self.messages.append(message)
        return "250 OK"

    def __enter__(self) -> MailSink:
        from aiosmtpd.controller import Controller

        # aiosmtpd logs every connection at INFO ("Peer: ...", "Connection lost during
        # _handle_client()"): noise among the results printed by the main job and scripts/airflow
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        if self.folder is not None:
            maildir(self.folder)
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


def standalone_env(port: int, smtp_port: int, home: Path | None = None) -> dict[str, str]:
    """What `airflow standalone` needs on top of `airflow_env`, consistent for any `port`: the UI and
    API there, the tasks' execution API there (else they cannot start: "Connection refused"), and the
    links in emails (approval, failures) pointing there."""
    base = f"http://localhost:{port}"
    return airflow_env(smtp_port, home=home) | {
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"{base}/",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        # standalone starts `airflow api-server`, `airflow scheduler`, ... by name: this venv's first
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


# callbacks a local trial may POST to although http and loopback (DTSEN_CALLBACK_ALLOWLIST)
LOCAL_CALLBACKS = "127.0.0.1,localhost,[::1]"


def local_disclosure_key(home: Path) -> str:
    """DTSEN_API_DISCLOSURE_KEY for this machine: the environment's, else one made once and kept in
    `home`/api-disclosure-key (for a local `dtsen api`; Airflow's tasks do not need it)."""
    return settings().api_disclosure_key or _local_key(home / "api-disclosure-key")


def local_callback_signing_key(home: Path) -> str:
    """DTSEN_CALLBACK_SIGNING_KEY for this machine: the environment's, else one made once and kept in
    `home`/callback-signing-key. dtsen_notify_programs signs deliveries to the registry API's
    subscribers with secrets derived from it, so `dtsen api` must run with the same key."""
    return settings().callback_signing_key or _local_key(home / "callback-signing-key")


def local_api_signing_key(home: Path) -> str:
    """DTSEN_API_SIGNING_KEY for this machine: the environment's, else an Ed25519 private key made once
    and kept in `home`/api-signing-key (a local `dtsen api` signs its answers with it)."""
    from dtsen.api.signing import generate_private_key_text

    return settings().api_signing_key or _local_key(home / "api-signing-key", generate_private_key_text)


def _local_key(path: Path, make=None) -> str:
    """A random key made once (by `make`; a random url-safe string by default), readable by its owner only."""
    home = path.parent
    if not path.exists():
        import secrets

        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make() if make else secrets.token_urlsafe(32))
    return path.read_text().strip()


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (session id, state) of every process (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command) "
        found[int(entry.name)] = (int(fields[3]), fields[0])
    return found


def session_members(session: int) -> list[int]:
    """The live processes of `session` (zombies are gone already, only not yet reaped)."""
    return [pid for pid, (sid, state) in _processes().items() if sid == session and state != "Z"]


def stop_session(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """Stop `proc` (started with start_new_session=True) and every process of its session: SIGTERM,
    then SIGKILL whatever still runs after `grace` seconds; return when none is left. Task processes
    get process groups of their own (Airflow's supervisor), so a killpg would miss them; they all
    stay in the session, orphans included."""
    signalled: set[int] = set()
    deadline = time.monotonic() + grace
    if not Path("/proc").is_dir():  # not Linux: the session's own process group is what can be reached
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return
    while True:
        proc.poll()  # reap our own child
        members = session_members(proc.pid)
        if not members:
            return
        killing = time.monotonic() > deadline
        for pid in members:
            if killing or pid not in signalled:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL if killing else signal.SIGTERM)
                signalled.add(pid)
        time.sleep(0.2)


def run_until_stopped(command: list[str], env: dict[str, str] | None = None, grace: float = 30.0) -> int:
    """Run `command` in a session of its own until it ends or this process gets SIGINT (Ctrl-C) or
    SIGTERM; then stop every process of that session and wait for them (see `stop_session`).
    Returns the command's exit code, or 128 + the signal that stopped it."""
    received: list[int] = []

    def stop(signum, _frame) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # own session: Ctrl-C reaches only this process, which then stops the components in order
        proc = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            while not received and proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.5)
            if received:
                print(f"stopping {command[-1]} and every process it started", file=sys.stderr, flush=True)
        finally:
            stop_session(proc, grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + received[0] if received else proc.returncode


def standalone(port: int = 8080) -> int:
    """`airflow standalone` for this project: its DAGs and connections, the local warehouse, and a
    local SMTP sink whose mail is kept as files (a Maildir) under DTSEN_HOME/mail. Ctrl-C (or
    SIGTERM) stops every process it started."""
    from dtsen.warehouse import engine
    from dtsen.warehouse.migrate import migrate

    cfg = settings()
    with engine.connect() as conn:  # set-up: rounds refuse a warehouse whose migrations are behind
        migrate(conn)
    smtp_port = free_port(LOCAL_SMTP_PORT)
    env = (
        {
            # 32 LocalExecutor workers (Airflow's default) are more than a laptop's cores can serve
            "AIRFLOW__CORE__PARALLELISM": "8",
            # the one local user may answer the approval a blocked candidate waits for
            "DTSEN_APPROVERS": "admin",
            # a trial's webhook receivers and API subscribers run on this machine (http, loopback)
            "DTSEN_CALLBACK_ALLOWLIST": LOCAL_CALLBACKS,
        }
        | os.environ
        | standalone_env(port, smtp_port)
        | {
            "DTSEN_DATABASE_URL": engine.database_url(),  # the tasks use exactly this warehouse
            "DTSEN_CALLBACK_SIGNING_KEY": local_callback_signing_key(cfg.home),
        }
    )
    migrate_airflow_db(env)
    mail = cfg.home / "mail"
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    print(
        f"Airflow UI: {env['AIRFLOW__API__BASE_URL']}  (user admin; its password is printed below by Airflow "
        f"and kept in {passwords})"
    )
    print(
        f"DAGs from {env['AIRFLOW__CORE__DAGS_FOLDER']}; warehouse {engine.describe_target(env['DTSEN_DATABASE_URL'])}"
    )
    print(f"mail goes to a local SMTP sink on 127.0.0.1:{smtp_port}, kept in {mail}/new/")
    keys = ("DTSEN_API_DISCLOSURE_KEY", "DTSEN_CALLBACK_SIGNING_KEY", "DTSEN_API_SIGNING_KEY")
    if not all(os.environ.get(k) for k in keys):
        local_disclosure_key(cfg.home)
        local_api_signing_key(cfg.home)
        print(
            f"registry API subscribers are signed with the key in {cfg.home / 'callback-signing-key'}: run "
            f"`DTSEN_API_DISCLOSURE_KEY=$(cat {cfg.home / 'api-disclosure-key'}) "
            f"DTSEN_CALLBACK_SIGNING_KEY=$(cat {cfg.home / 'callback-signing-key'}) "
            f"DTSEN_API_SIGNING_KEY=$(cat {cfg.home / 'api-signing-key'}) "
            f"DTSEN_CALLBACK_ALLOWLIST={LOCAL_CALLBACKS} .venv/bin/dtsen api`"
        )
    sys.stdout.flush()
    with MailSink(smtp_port, folder=mail):
        return run_until_stopped([sys.executable, "-m", "airflow", "standalone"], env)
