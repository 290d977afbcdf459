"""Two answers on one blocked candidate at the same moment (issue 23, item 6): the Airflow approval
recorder promises that a second answer on a candidate that is no longer BLOCKED is a no-op, so two
recorders (or `dtsen approve` and a recorder) racing must never end in an AuditError.

The calls are real and concurrent: each runs in its own thread on its own warehouse connection. So
that they overlap every time (not only when the scheduler happens to interleave them), a third
session holds the candidate's row while both start; it lets go only once both wait on it.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from dtsen.warehouse import engine

REASON = "PBI JK narrowed by decree (test)"
DRIFT_ONLY = {
    "success": False,
    "checks": [
        {"rule": "nik_unique", "asset": "x", "description": "each NIK once", "success": True, "observed": 0},
        {"rule": "drift_removed", "asset": "drift", "description": "drift", "success": False, "observed": 1},
    ],
    "drift_flagged": [],
    "warnings": [],
}


@pytest.fixture
def blocked(fresh_db, monkeypatch):
    """Round 2026-Q1 with version 1 BLOCKED on drift only; `ops` may approve."""
    fresh_db.execute("INSERT INTO ingest.round (round_id, status) VALUES ('2026-Q1', 'MERGED')")
    fresh_db.execute(
        "INSERT INTO publish.version (version, round_seq, status, audit) "
        "SELECT 1, round_seq, 'BLOCKED', %s FROM ingest.round WHERE round_id = '2026-Q1'",
        (Jsonb(DRIFT_ONLY),),
    )
    fresh_db.commit()
    monkeypatch.setenv("DTSEN_APPROVERS", "ops,other")
    return fresh_db


def _overlapping(conn: psycopg.Connection, calls: dict) -> dict:
    """Run each call in its own thread while a third session holds version 1's row; release it once
    every call waits on a lock (in the order given), then return what each returned or raised."""
    outcomes: dict = {}

    def run(name, call):
        try:
            outcomes[name] = call()
        except Exception as exc:  # the test reports it
            outcomes[name] = exc

    with psycopg.connect(engine.libpq_conninfo(engine.database_url())) as holder:
        holder.execute("SELECT 1 FROM publish.version WHERE version = 1 FOR UPDATE")
        threads = []
        for name, call in calls.items():
            thread = threading.Thread(target=run, args=(name, call))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 30
            while _waiting(conn) < len(threads):  # this call has reached the row
                assert time.monotonic() < deadline and thread.is_alive(), outcomes
                time.sleep(0.02)
        holder.rollback()
    for thread in threads:
        thread.join(60)
    return outcomes


def _waiting(conn: psycopg.Connection) -> int:
    waiting = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ).fetchone()[0]
    conn.rollback()
    return waiting


def _record(user: str, run_id: str, approved: bool = True):
    from dtsen.round import RoundContext, record_approval

    ctx = RoundContext.create("2026-Q1", dag_run_id=run_id, approval_in_airflow=True)
    return lambda: record_approval(
        ctx, approved=approved, decided_by=user, responder_id=user, reason=REASON, timed_out=False
    )


def _decisions(conn: psycopg.Connection) -> list[tuple]:
    rows = conn.execute(
        "SELECT outcome, decided_by, channel FROM publish.approval_decision WHERE version = 1 ORDER BY decision_pk"
    ).fetchall()
    conn.rollback()
    return rows


def test_two_concurrent_approvals_through_the_recorder_approve_once_and_the_second_is_a_no_op(blocked):
    outcomes = _overlapping(
        blocked, {"first": _record("ops", "manual__a"), "second": _record("other", "manual__b")}
    )
    assert not [o for o in outcomes.values() if isinstance(o, BaseException)], outcomes
    assert outcomes["first"] == {"round_id": "2026-Q1", "version": 1, "decision": "APPROVED"}
    assert outcomes["second"] == {"round_id": "2026-Q1", "version": 1, "decision": None}  # no-op
    assert blocked.execute(
        "SELECT status, approved_by FROM publish.version WHERE version = 1"
    ).fetchone() == (
        "APPROVED",
        "ops",
    )
    assert _decisions(blocked) == [("APPROVED", "ops", "airflow-ui")]  # approved once


def test_a_rejection_racing_an_approval_is_recorded_only_while_the_candidate_is_blocked(blocked):
    outcomes = _overlapping(
        blocked,
        {"approve": _record("ops", "manual__a"), "reject": _record("other", "manual__b", approved=False)},
    )
    assert outcomes["approve"]["decision"] == "APPROVED", outcomes
    assert outcomes["reject"] == {"round_id": "2026-Q1", "version": 1, "decision": None}, outcomes
    assert _decisions(blocked) == [("APPROVED", "ops", "airflow-ui")]


def test_dtsen_approve_racing_the_recorder_leaves_the_recorder_a_no_op(blocked):
    from dtsen.publish.audit import approve_version

    def cli():
        with engine.connect() as conn, conn.transaction():
            approve_version(conn, 1, "nama.admin", REASON)  # what `dtsen approve` runs
        return "approved"

    outcomes = _overlapping(blocked, {"cli": cli, "airflow": _record("ops", "manual__a")})
    assert outcomes == {
        "cli": "approved",
        "airflow": {"round_id": "2026-Q1", "version": 1, "decision": None},
    }, outcomes
    assert _decisions(blocked) == [("APPROVED", "nama.admin", "cli")]


def test_dtsen_approve_after_the_recorder_approved_says_it_is_approved_already(blocked):
    """The other order: the person at the command line asked for something that cannot happen any
    more, so they are told (exit 5) who decided, and nothing is recorded twice."""
    from dtsen.publish.audit import AuditError, approve_version

    def cli():
        with engine.connect() as conn, conn.transaction():
            approve_version(conn, 1, "nama.admin", REASON)

    outcomes = _overlapping(blocked, {"airflow": _record("ops", "manual__a"), "cli": cli})
    assert outcomes["airflow"]["decision"] == "APPROVED", outcomes
    assert isinstance(outcomes["cli"], AuditError), outcomes
    assert "version 1 is APPROVED (approved by ops); only a BLOCKED candidate" in str(outcomes["cli"])
    assert _decisions(blocked) == [("APPROVED", "ops", "airflow-ui")]
