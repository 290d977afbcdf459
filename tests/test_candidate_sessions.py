"""A candidate's spans written by several sessions (issue 27): the same answers as one session (and the
same registry whatever plans the merge got), and all or nothing when a writer or the coordinator dies
(dtsen.publish.in_sessions)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from dtsen.programs import load_programs
from dtsen.publish.candidate import build_candidate
from dtsen.publish.explain import explain
from dtsen.publish.in_sessions import build_candidate_in_sessions
from dtsen.rank.model import load_model
from dtsen.warehouse import engine
from tests.factories import run_steps, sample_first_round_in

ROUNDS = ("2026-Q1", "2026-Q2", "2026-Q3")
SPANS = (
    "keluarga_span",
    "anggota_span",
    "recipient_span",
    "implausible_span",
    "recipient_count",
    "implausible_count",
)
# every statement that may run in parallel does, however small the sample (PostgreSQL 15's names)
FORCED_PARALLEL = (
    "-c force_parallel_mode=on -c parallel_setup_cost=0 -c parallel_tuple_cost=0 "
    "-c min_parallel_table_scan_size=0 -c min_parallel_index_scan_size=0 -c max_parallel_workers_per_gather=2"
)
SERIAL = "-c max_parallel_workers_per_gather=0"


def _digest(conn: psycopg.Connection, query: str) -> str:
    """A digest of the text rows `query` returns, in sorted order."""
    return hashlib.sha256("\n".join(sorted(r[0] for r in conn.execute(query))).encode()).hexdigest()


def _spans(conn: psycopg.Connection) -> dict[str, str]:
    """A digest of each span and count table (what a version reads)."""
    return {table: _digest(conn, f"SELECT t::text FROM publish.{table} t") for table in SPANS}  # noqa: S608


def _registry(conn: psycopg.Connection) -> dict[str, str]:
    """A digest of each registry table the merge writes (the history and the rejections without the time
    each row was written)."""
    tables = {
        "person": "SELECT t::text FROM registry.person t",
        "family": "SELECT t::text FROM registry.family t",
        "membership": "SELECT t::text FROM registry.membership t",
        "field_change": "SELECT (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, "
        "source)::text FROM registry.field_change",
        "rejection": "SELECT (round_seq, submission_pk, file_name, line_no, reason_code, field, key_value, detail)::text "
        "FROM quality.rejection",
        "changes": "SELECT (round_seq, merge_summary->'changes')::text FROM ingest.round",
    }
    return {name: _digest(conn, query) for name, query in tables.items()}


def _files(root: Path) -> dict[str, str]:
    """Every published file but the manifests (which carry the time they were written), by digest."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def _sample_world(scratch_database, tmp_path_factory, name: str, sessions: int, pgoptions: str) -> dict:
    """The three sample rounds through every step, the candidate's spans written by `sessions`
    sessions, every connection with the server options `pgoptions`."""
    url = scratch_database(name)
    publish = tmp_path_factory.mktemp(f"publish-{name}")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_DATABASE_URL", url)
        env.setenv("DTSEN_RAW_ROOT", str(tmp_path_factory.mktemp(f"raw-{name}")))
        env.setenv("DTSEN_WRITE_SESSIONS", str(sessions))
        env.setenv("PGOPTIONS", pgoptions)
        builds = {}
        for round_id in ROUNDS:
            steps = run_steps(round_id, landing_root=SAMPLE_DIR / "landing", publish_root=publish)
            builds[round_id] = steps["rank_and_audit"]["build"]["sessions"]
        with psycopg.connect(engine.libpq_conninfo(url)) as conn:
            nik_rows = conn.execute(
                "SELECT nik FROM publish.anggota_span WHERE valid_to IS NULL ORDER BY nik LIMIT 40"
            ).fetchall()
            explained = {nik: explain(conn, nik, None, load_model(), load_programs()) for (nik,) in nik_rows}
            audits = conn.execute(
                "SELECT version, status, audit->'success', audit->'checks', audit->'drift_flagged', "
                "audit->'warnings' FROM publish.version ORDER BY version"
            ).fetchall()
            leftovers = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname IN ('scratch_audit', 'scratch_merge')"
            ).fetchone()[0]
            return {
                "registry": _registry(conn),
                "spans": _spans(conn),
                "files": _files(publish),
                "explain": explained,
                "sessions": builds,
                "audits": audits,
                "scratch_left": leftovers,
            }


@pytest.fixture(scope="module")
def one_and_two_sessions(scratch_database, tmp_path_factory):
    """The three sample rounds twice: one session and serial plans, and two writer sessions and every
    parallel plan PostgreSQL can make (in every step: the round's answers may not depend on a plan)."""
    one = _sample_world(scratch_database, tmp_path_factory, "sessions_one", 1, SERIAL)
    two = _sample_world(scratch_database, tmp_path_factory, "sessions_two", 2, FORCED_PARALLEL)
    return one, two


def test_two_sessions_build_what_one_builds_byte_for_byte(one_and_two_sessions):
    one, two = one_and_two_sessions
    assert set(one["sessions"].values()) == {1} and set(two["sessions"].values()) == {2}
    assert two["spans"] == one["spans"]
    assert two["files"] == one["files"] and len(one["files"]) > 10
    assert two["explain"] == one["explain"]


def test_every_plan_merges_each_round_into_the_registry_serial_plans_leave(one_and_two_sessions):
    """The merge's statements read through parallel plans where PostgreSQL can make one (and its
    scratch tables are built for that): the registry may not depend on which plan ran."""
    one, two = one_and_two_sessions
    assert two["registry"] == one["registry"]


def test_two_sessions_audit_each_candidate_as_one_does(one_and_two_sessions):
    one, two = one_and_two_sessions
    assert len(one["audits"]) == len(ROUNDS)
    assert two["audits"] == one["audits"]
    assert one["scratch_left"] == two["scratch_left"] == 0


# -- all or nothing -------------------------------------------------------------------------------


@pytest.fixture
def merged_first_round(scratch_database, tmp_path, request):
    """The sample's first round merged, its candidate not built yet (two sessions allowed)."""
    url = scratch_database(f"sessions_fault_{request.node.name[-20:]}")
    with sample_first_round_in(url, tmp_path, "aduan_outcomes", DTSEN_WRITE_SESSIONS="2"):
        with psycopg.connect(engine.libpq_conninfo(url), autocommit=True) as conn:
            yield url, conn


def _serial_reference(url: str) -> dict[str, str]:
    """The spans one session builds, in a transaction rolled back."""
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        build_candidate(conn, "2026-Q1", load_model(), load_programs())
        spans = _spans(conn)
        conn.rollback()
    return spans


def _wait_for(conn: psycopg.Connection, query: str, params: tuple = (), timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not conn.execute(query, params or None).fetchone()[0]:
        assert time.monotonic() < deadline, query
        time.sleep(0.1)


def _prepared(conn: psycopg.Connection) -> list[str]:
    return [
        g for (g,) in conn.execute("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()")
    ]


def _two_sessions():
    return build_candidate_in_sessions(
        lambda: engine.connect(), "2026-Q1", (load_model(), load_programs(), None), sessions=2
    )


def _build_with_a_session_killed(url: str, conn: psycopg.Connection, lock: str, sessions: str, victim: str):
    """Build with two sessions while `lock` holds both sessions named `sessions` (a LIKE pattern)
    waiting, kill the one named `victim`, then let the other go on. What the build raised."""
    outcome: dict = {}

    def build():
        try:
            _two_sessions()
        except Exception as exc:  # noqa: BLE001 (the test looks at it)
            outcome["error"] = exc

    with psycopg.connect(engine.libpq_conninfo(url)) as blocker:
        blocker.execute(lock)
        builder = threading.Thread(target=build)
        builder.start()
        _wait_for(
            conn,
            "SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name LIKE %s AND wait_event_type = 'Lock'",
            (sessions,),
        )
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (victim,)
        )
        blocker.rollback()  # the other session goes on
    builder.join(timeout=300)
    return outcome.get("error")


def test_a_writer_killed_mid_write_leaves_no_version_and_no_span(merged_first_round):
    url, conn = merged_first_round
    before = _spans(conn)
    reference = _serial_reference(url)
    # the writers stop at the last span table; the surviving one prepares its share
    error = _build_with_a_session_killed(
        url, conn, "LOCK TABLE publish.implausible_span IN SHARE MODE", "dtsen-writer-%", "dtsen-writer-1"
    )
    assert isinstance(error, psycopg.Error)
    assert conn.execute("SELECT count(*) FROM publish.version").fetchone()[0] == 0
    assert _spans(conn) == before and _prepared(conn) == []

    built = _two_sessions()
    assert built.created_now and built.build["sessions"] == 2
    assert _spans(conn) == reference


def test_a_session_killed_computing_its_families_leaves_no_version_and_the_next_build_whole(
    merged_first_round,
):
    """The eligibility context and recipients are computed by one session per KK range before any span
    is written: one killed there fails the build with nothing written; what the other committed to
    the scratch tables is cleared by the next build, which reaches one session's spans."""
    url, conn = merged_first_round
    before = _spans(conn)
    reference = _serial_reference(url)
    # of the build, only the eligibility context reads the civil registry: both shares stop there
    error = _build_with_a_session_killed(
        url, conn, "LOCK TABLE ref.dukcapil IN ACCESS EXCLUSIVE MODE", "dtsen-family-%", "dtsen-family-0"
    )
    assert isinstance(error, psycopg.Error)
    assert conn.execute("SELECT count(*) FROM publish.version").fetchone()[0] == 0
    assert _spans(conn) == before and _prepared(conn) == []

    built = _two_sessions()
    assert built.created_now and _spans(conn) == reference
    assert "eligibility_context share 2/2" in built.build["step_seconds"]


def test_a_coordinator_killed_before_its_decision_leaves_the_spans_as_they_were(merged_first_round):
    url, conn = merged_first_round
    before = _spans(conn)
    reference = _serial_reference(url)
    script = (
        "from dtsen.programs import load_programs\n"
        "from dtsen.publish.in_sessions import build_candidate_in_sessions\n"
        "from dtsen.rank.model import load_model\n"
        "from dtsen.warehouse import engine\n"
        "build_candidate_in_sessions(engine.connect, '2026-Q1', (load_model(), load_programs(), None), sessions=2)\n"
    )
    with psycopg.connect(engine.libpq_conninfo(url)) as blocker:
        # the decision's transaction stops at the counts, after both shares are prepared
        blocker.execute("LOCK TABLE publish.implausible_count IN SHARE MODE")
        coordinator = subprocess.Popen(
            [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=os.environ | {"DTSEN_DATABASE_URL": url}
        )
        _wait_for(conn, "SELECT count(*) = 2 FROM pg_prepared_xacts WHERE database = current_database()")
        _wait_for(
            conn,
            "SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO publish.implausible_count%'",
        )
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=60)
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO publish.implausible_count%'"
        )
        blocker.rollback()
    _wait_for(
        conn,
        "SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE 'INSERT INTO publish.implausible_count%'",
    )
    assert len(_prepared(conn)) == 2  # in doubt: durable, invisible
    assert conn.execute("SELECT count(*) FROM publish.version").fetchone()[0] == 0
    assert _spans(conn) == before

    built = build_candidate_in_sessions(
        lambda: engine.connect(), "2026-Q1", (load_model(), load_programs(), None), sessions=2
    )
    assert built.created_now and _prepared(conn) == []
    assert _spans(conn) == reference
