"""The project's private PostgreSQL cluster, used when DTSEN_DATABASE_URL is unset.

Created with the installed `initdb`/`pg_ctl` under the project's state directory and listening on
127.0.0.1 at a project port plus a private unix socket. PostgreSQL refuses to run as root, so when
started as root the cluster is owned and run by the unprivileged `postgres` system user.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dtsen.config import Settings, settings

log = logging.getLogger(__name__)

DATABASE = "dtsen"
SUPERUSER = "postgres"
RUN_AS_WHEN_ROOT = "postgres"

# Sized for bulk COPY and set-based merges on a 2-core / 24 GiB machine; a dev cluster, so the
# WAL is kept minimal (no replication) which also lets COPY into a fresh table skip WAL.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "60",
    "shared_buffers": "'1GB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'1GB'",
    "effective_cache_size": "'8GB'",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'30min'",
    "max_parallel_workers_per_gather": "2",
    # a candidate's spans are written by several sessions committed together (dtsen.warehouse.prepared)
    "max_prepared_transactions": "32",
    "jit": "off",  # JIT compile time dominates the many short validation queries
    "log_min_duration_statement": "-1",
    "log_statement": "'none'",  # statements may carry NIKs: never log them
    # nor a failed statement's text, nor DETAIL/CONTEXT lines: COPY's CONTEXT quotes the rejected row
    "log_min_error_statement": "panic",
    "log_error_verbosity": "terse",
    "timezone": "'UTC'",
}


class LocalClusterError(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalCluster:
    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"


def _bindir() -> Path:
    """Where initdb/pg_ctl live: DTSEN_PG_BINDIR, else the newest Debian install, else PATH."""
    if configured := settings().pg_bindir:
        return configured
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise LocalClusterError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. Install the Debian package "
        "'postgresql' or set DTSEN_PG_BINDIR, or point DTSEN_DATABASE_URL at an existing server."
    )


def _as_root() -> bool:
    return os.geteuid() == 0


def _run(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    if _as_root():
        args = ["runuser", "-u", RUN_AS_WHEN_ROOT, "--", *args]
    result = subprocess.run(args, capture_output=True, text=True, check=False, cwd="/")
    if check and result.returncode != 0:
        tool = Path(args[4] if _as_root() else args[0]).name
        raise LocalClusterError(f"{tool} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def _reachable_by_postgres_user(path: Path) -> bool:
    probe = subprocess.run(
        ["runuser", "-u", RUN_AS_WHEN_ROOT, "--", "test", "-w", str(path)], capture_output=True, check=False
    )
    return probe.returncode == 0


def cluster_for(cfg: Settings | None = None) -> LocalCluster:
    cfg = cfg or settings()
    root = cfg.home / "pg"
    if _as_root():
        root.mkdir(parents=True, exist_ok=True)
        user = pwd.getpwnam(RUN_AS_WHEN_ROOT)
        os.chown(root, user.pw_uid, user.pw_gid)
        if not _reachable_by_postgres_user(root):
            # e.g. a checkout under /root (mode 700): keep the cluster in a per-project dir instead.
            digest = hashlib.sha256(str(cfg.home).encode()).hexdigest()[:12]
            root = Path("/var/tmp") / f"dtsen-pg-{digest}"
    return LocalCluster(root=root, port=cfg.local_pg_port)


@contextmanager
def _lock(cluster: LocalCluster):
    """Serialise start/stop between processes (tests, CLI, Airflow tasks) on one machine."""
    cluster.root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = cluster.root.parent / f".{cluster.root.name}.lock"
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _prepare_root(cluster: LocalCluster) -> None:
    cluster.root.mkdir(parents=True, exist_ok=True)
    cluster.socket_dir.mkdir(parents=True, exist_ok=True)
    if _as_root():
        user = pwd.getpwnam(RUN_AS_WHEN_ROOT)
        for path in (cluster.root, cluster.socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        cluster.root.chmod(0o700)


def _initdb(cluster: LocalCluster, bindir: Path) -> None:
    log.info("creating private PostgreSQL cluster in %s", cluster.data_dir)
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(cluster.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
    )


SETTINGS_FILE = "dtsen.conf"


def _apply_settings(cluster: LocalCluster) -> bool:
    """Write the project's server settings (SERVER_SETTINGS, port, socket) into the cluster's own
    include file; True if they changed. Run at every start, so a cluster made by an older version
    of the project gets today's settings too."""
    wanted = "# written by dtsen at every start: edit SERVER_SETTINGS in dtsen/warehouse/localpg.py\n"
    wanted += "\n".join(f"{k} = {v}" for k, v in SERVER_SETTINGS.items())
    wanted += f"\nport = {cluster.port}\nunix_socket_directories = '{cluster.socket_dir}'\n"
    conf = cluster.data_dir / "postgresql.conf"
    include = f"include_if_exists = '{SETTINGS_FILE}'"
    if include not in conf.read_text(encoding="utf-8"):
        # Root may append to the cluster user's file; ownership stays with that user. Last one wins.
        with open(conf, "a", encoding="utf-8") as fh:
            fh.write(f"\n# dtsen private cluster\n{include}\n")
    target = cluster.data_dir / SETTINGS_FILE
    if target.exists() and target.read_text(encoding="utf-8") == wanted:
        return False
    target.write_text(wanted, encoding="utf-8")
    if _as_root():
        user = pwd.getpwnam(RUN_AS_WHEN_ROOT)
        os.chown(target, user.pw_uid, user.pw_gid)
    return True


def is_running(cluster: LocalCluster) -> bool:
    if not (cluster.data_dir / "PG_VERSION").exists():
        return False
    return (
        _run([str(_bindir() / "pg_ctl"), "-D", str(cluster.data_dir), "status"], check=False).returncode == 0
    )


def _create_database(cluster: LocalCluster, bindir: Path) -> None:
    psql = [
        str(bindir / "psql"),
        "-h",
        str(cluster.socket_dir),
        "-p",
        str(cluster.port),
        "-U",
        SUPERUSER,
        "-d",
        "postgres",
        "-v",
        "ON_ERROR_STOP=1",
        "-qtA",
    ]
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"  # noqa: S608 (a constant)
    exists = _run([*psql, "-c", query]).stdout.strip()
    if exists != "1":
        _run([*psql, "-c", f"CREATE DATABASE {DATABASE}"])


def ensure_started(cfg: Settings | None = None) -> LocalCluster:
    """Create the cluster on first use, start it if stopped, and make sure the database exists."""
    cluster = cluster_for(cfg)
    bindir = _bindir()
    with _lock(cluster):
        _prepare_root(cluster)
        if not (cluster.data_dir / "PG_VERSION").exists():
            _initdb(cluster, bindir)
        changed = _apply_settings(cluster)
        if changed and is_running(cluster):
            # logging settings take effect on reload; memory settings at the next start
            _run([str(bindir / "pg_ctl"), "-D", str(cluster.data_dir), "reload"])
        if not is_running(cluster):
            log.info("starting private PostgreSQL on 127.0.0.1:%s", cluster.port)
            result = _run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(cluster.data_dir),
                    "-l",
                    str(cluster.log_file),
                    "-w",
                    "-t",
                    "120",
                    "start",
                ],
                check=False,
            )
            if result.returncode != 0:
                tail = _tail(cluster.log_file)
                raise LocalClusterError(
                    f"private PostgreSQL did not start (port {cluster.port} taken? set DTSEN_LOCAL_PG_PORT). "
                    f"Server log tail:\n{tail}"
                )
        _wait_ready(cluster, bindir)
        _create_database(cluster, bindir)
    return cluster


def _wait_ready(cluster: LocalCluster, bindir: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = _run(
            [str(bindir / "pg_isready"), "-h", str(cluster.socket_dir), "-p", str(cluster.port)], check=False
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise LocalClusterError(f"private PostgreSQL not ready after {timeout:.0f}s")


def stop(cfg: Settings | None = None) -> bool:
    """Stop the private cluster; True if it was running."""
    cluster = cluster_for(cfg)
    with _lock(cluster):
        if not is_running(cluster):
            return False
        _run([str(_bindir() / "pg_ctl"), "-D", str(cluster.data_dir), "-m", "fast", "-w", "stop"])
        return True


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
