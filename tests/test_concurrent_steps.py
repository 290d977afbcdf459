"""Two runs of one round at the same moment (two schedulers, a manual run beside a scheduled one,
`dtsen run-round` twice): each step is serialised, so the second run waits for the first and then
finds its work done; neither crashes on a key the other inserted (issue 23, item 3). And a database
error that does end a step reaches the command line, the Airflow task log and the failure email
named by its class, SQLSTATE and constraint, never with its DETAIL line, which quotes the key (a KK
or a NIK)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import pq
from sqlalchemy.engine import make_url

from dtsen.paths import SAMPLE_DIR
from dtsen.round import STEP, STEPS, RoundContext, run_round
from dtsen.warehouse import engine, localpg
from tests.factories import (
    ANGGOTA_HEADER,
    FAMILY_VALUES,
    KELUARGA_HEADER,
    KK1,
    KK2,
    PEOPLE,
    build_round,
    make_submission,
    person,
    run_steps,
)

DTSEN = str(Path(sys.executable).parent / "dtsen")
LANDING = SAMPLE_DIR / "landing"


# -- a step run twice at once, the second while the first's transaction is still open -------------


class _Gate:
    """Holds the first run's transaction open, its work done, until the second run has caught up."""

    def __init__(self) -> None:
        self.holder: threading.Thread | None = None
        self.ready = threading.Event()
        self.release = threading.Event()


def _held_connection(gate: _Gate) -> type[psycopg.Connection]:
    class HeldOpen(psycopg.Connection):
        """The first run's connection: its outermost transaction waits at the gate before committing."""

        @contextlib.contextmanager
        def transaction(self, *args, **kwargs):
            outermost = self.info.transaction_status == pq.TransactionStatus.IDLE
            with super().transaction(*args, **kwargs) as tx:
                yield tx
                if outermost and threading.current_thread() is gate.holder:
                    gate.ready.set()
                    gate.release.wait(300)

    return HeldOpen


def _waiting_on_a_lock(pids: list[int]) -> bool:
    with psycopg.connect(engine.libpq_conninfo(engine.database_url()), autocommit=True) as observer:
        return bool(
            observer.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s) AND wait_event_type = 'Lock'", (pids,)
            ).fetchone()
        )


def _twice_at_once(monkeypatch, step_name: str, ctx: RoundContext) -> tuple[object, object]:
    """Run the step; once its work is done but not committed, run it again beside it, and let the
    first commit when the second waits on a lock (or has finished without waiting). Each run's
    summary, or what it raised. Deterministic: the window a lock-free check leaves open is held open."""
    gate = _Gate()
    pids: list[int] = []
    url = engine.libpq_conninfo(engine.database_url())
    held = _held_connection(gate)

    def connect() -> psycopg.Connection:
        first = threading.current_thread() is gate.holder
        conn = (held if first else psycopg.Connection).connect(url, application_name="dtsen")
        if not first:
            pids.append(conn.info.backend_pid)
        return conn

    monkeypatch.setattr("dtsen.round._connect", connect)
    results: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            results[name] = STEP[step_name].run(ctx)
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            results[name] = exc

    first = threading.Thread(target=run, args=("first",))
    second = threading.Thread(target=run, args=("second",))
    gate.holder = first
    first.start()
    deadline = time.monotonic() + 300
    while not gate.ready.is_set() and first.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    second.start()
    deadline = time.monotonic() + 60
    while second.is_alive() and time.monotonic() < deadline and not (pids and _waiting_on_a_lock(pids)):
        time.sleep(0.05)
    gate.release.set()
    first.join(300)
    second.join(300)
    return results.get("first"), results.get("second")


@pytest.fixture(scope="module")
def sample_first_round(module_warehouse, tmp_path_factory) -> Path:
    """The sample's 2026-Q1, run whole; its publish root."""
    publish = tmp_path_factory.mktemp("publish")
    run_steps("2026-Q1", landing_root=LANDING, publish_root=publish)
    module_warehouse.commit()
    return publish


def test_two_dtsen_run_round_of_one_round_at_the_same_moment_both_finish(sample_first_round):
    """The issue's case: before, one of them exited 1 in the integrity step, printing the KK. The whole
    round, notices and publication included: each notice is recorded once whoever inserts it first."""
    env = os.environ | {"DTSEN_PUBLISH_ROOT": str(sample_first_round)}
    command = [DTSEN, "run-round", "--round", "2026-Q2"]
    command += ["--landing-root", str(LANDING)]
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    done = [run.communicate(timeout=600) for run in runs]
    for run, (_, err) in zip(runs, done, strict=True):
        assert run.returncode == 0, err[-3000:]
        assert "DETAIL" not in err and "Traceback" not in err
    integrity = [
        line for out, _ in done for line in out.splitlines() if line.strip().startswith("integrity ")
    ]
    assert sorted("by an earlier run" in line for line in integrity) == [False, True], (
        integrity
    )  # scored once


# The summary's word that a run found the step done by an earlier run (the first, which it waited for);
# in the round's step order, as each case first runs the steps before its own.
DONE_BEFORE = {
    "open_round": lambda s: s["dukcapil_loaded_now"] is False,
    "stage_and_validate": lambda s: s["processed_now"] is False,
    "finish_validation": lambda s: s["already_validated"] is True,
    "merge": lambda s: s["already_merged"] is True,
    "integrity": lambda s: s["scored"] is True and s["detected_now"] is False,
    "cases": lambda s: s["done_before"] is True,
    "feedback": lambda s: s["submissions_reported"] == 0 and s["already_reported"] > 0,
    "aduan_outcomes": lambda s: s["done_before"] is True,
    "rank_and_audit": lambda s: s["built_now"] is False,
    "publish": lambda s: s["published_now"] is False,
}


@pytest.fixture(scope="module")
def third_round(sample_first_round) -> RoundContext:
    """2026-Q2 done (by the test above, else here), then 2026-Q3 to run step by step, keeping the
    staging of one merged round: its open_round drops 2026-Q1's."""
    run_steps("2026-Q2", landing_root=LANDING, publish_root=sample_first_round)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_STAGING_KEEP_ROUNDS", "1")
        return RoundContext.create("2026-Q3", landing_root=LANDING, publish_root=sample_first_round)


@pytest.mark.parametrize("step_name", list(DONE_BEFORE))
def test_a_step_run_twice_at_once_waits_for_the_first_run_then_finds_its_work_done(
    third_round, monkeypatch, step_name
):
    earlier = [step.name for step in STEPS[: [s.name for s in STEPS].index(step_name)]]
    run_round(third_round, only=earlier)  # done already when the cases run in order; each is idempotent
    if STEP[step_name].per_submission:
        submissions = STEP["open_round"].run(third_round)["submissions"]
        pairs = [
            _twice_at_once(monkeypatch, step_name, replace(third_round, submission=s)) for s in submissions
        ]
    else:
        pairs = [_twice_at_once(monkeypatch, step_name, third_round)]
    for first, second in pairs:
        assert isinstance(first, dict), repr(first)
        assert isinstance(second, dict), repr(second)
        assert not DONE_BEFORE[step_name](first), first  # the first did the work ...
        assert DONE_BEFORE[step_name](second), (first, second)  # ... and the second found it done
    first, second = pairs[0]
    if step_name == "open_round":  # what the first dropped is not dropped (nor reported) again
        assert first["staging_dropped"]["rounds"] == [1], first
        for kind, dropped in second["staging_dropped"].items():
            assert not set(dropped) & set(first["staging_dropped"][kind]), (first, second)
    if step_name == "integrity":  # the same outcome, kept once
        assert first["counts"] == second["counts"]


# -- a database error ending a step, as the command line, Airflow and data ops see it ---------------


@pytest.fixture
def integrity_collides(fresh_db, tmp_path, monkeypatch):
    """Two hand-made rounds: in the second, E leaves KK1 to head the new KK2. Merged; then a row of
    the integrity report the step is about to insert (KK2's) is planted, so the step fails on the
    report's primary key exactly as the second of two unserialised runs did."""
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    publish = tmp_path / "publish"
    monkeypatch.setenv("DTSEN_PUBLISH_ROOT", str(publish))
    keluarga = [f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"]
    anggota = [person("A", "TAMBAH", KK1, 1), person("C", "TAMBAH", KK1, 3), person("E", "TAMBAH", KK1, 3)]
    landing = build_round(tmp_path, "2026-Q1", anggota, keluarga)
    # a candidate of the first round (blocked: too few families for ten desil) makes the merge record
    # what later rounds touch, which is where the integrity step finds the families a round created
    run_steps("2026-Q1", landing_root=landing, publish_root=publish, until="rank_and_audit")
    make_submission(
        landing,
        "3273-2026Q2",
        folder_round="2026-Q2",
        data_files={
            "keluarga.csv": f"{KELUARGA_HEADER}\nTAMBAH,{KK2},3273011001,Jl. Dua,2026-05-02,{FAMILY_VALUES},\n".encode(),
            "anggota.csv": f"{ANGGOTA_HEADER}\nUBAH,{PEOPLE['E'][0]},{KK2},,,,1,,,,,,,\n".encode(),
        },
    )
    merged = run_steps("2026-Q2", landing_root=landing, publish_root=publish, until="merge")
    assert merged["merge"]["changes"]["families added"] == 1, merged["merge"]
    fresh_db.execute(
        "INSERT INTO quality.integrity_family (round_seq, no_kk, kode_wilayah, submitted_by, split, members) "
        "VALUES (%s, %s, '3273011001', '', true, 1)",
        (merged["open_round"]["round_seq"], int(KK2)),
    )
    fresh_db.commit()
    return landing


def _server_log_since(server_url: str):
    """What the private cluster's server log gains from now on (None for another warehouse: not ours)."""
    cluster = localpg.cluster_for()
    url = make_url(server_url)
    if (url.host, url.port) != ("127.0.0.1", cluster.port) or not cluster.log_file.exists():
        return lambda: None
    start = cluster.log_file.stat().st_size
    return lambda: cluster.log_file.read_bytes()[start:].decode(errors="replace")


def _names_the_condition_not_the_key(text: str) -> None:
    assert "UniqueViolation" in text and "23505" in text and "integrity_family_pkey" in text, text
    assert "DETAIL" not in text and "Key (" not in text and KK2 not in text, text


def test_a_database_error_on_the_command_line_names_its_constraint_never_the_key(
    integrity_collides, server_url
):
    server_log = _server_log_since(server_url)
    done = subprocess.run(
        [DTSEN, "run-round", "--round", "2026-Q2", "--landing-root", str(integrity_collides)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stderr[-3000:]  # not a DataError: retried, and a traceback shows where
    assert "Traceback" in done.stderr and "detect_splits" in done.stderr
    _names_the_condition_not_the_key(done.stderr)
    written = server_log()
    if written is not None:  # the warehouse's own log (log_error_verbosity = terse): no DETAIL either
        assert "integrity_family_pkey" in written and "DETAIL" not in written and KK2 not in written


def test_a_database_error_in_an_airflow_task_is_retried_and_its_log_and_email_name_no_key(
    integrity_collides, monkeypatch
):
    import structlog
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from dtsen.airflow_support import run_step
    from dtsen.notify.messages import task_failure_email

    ctx = RoundContext.create("2026-Q2", landing_root=integrity_collides)
    with pytest.raises(Exception) as raised:  # noqa: PT011 (its type and text are the test)
        run_step(STEP["integrity"], ctx)
    failure = raised.value
    assert not isinstance(failure, (AirflowFailException, AirflowException))  # Airflow retries it
    logged = "".join(traceback.format_exception(failure))  # the task log's traceback, and Airflow's
    logged += repr(
        structlog.tracebacks.ExceptionDictTransformer()((type(failure), failure, failure.__traceback__))
    )
    _names_the_condition_not_the_key(logged)
    assert "detect_splits" in logged  # where it happened stays
    email = task_failure_email(("ops@dtsen.test",), "dtsen_update_round", "integrity", "run-1", 1, failure)
    _names_the_condition_not_the_key(email.body)
    with pytest.raises(psycopg.errors.UniqueViolation) as unscrubbed:  # the error as the step raises it
        STEP["integrity"].run(ctx)
    email = task_failure_email(
        ("ops@dtsen.test",), "dtsen_update_round", "integrity", "run-1", 1, unscrubbed.value
    )
    _names_the_condition_not_the_key(email.body)
