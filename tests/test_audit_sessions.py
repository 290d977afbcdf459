"""The audit of a committed candidate computed by several sessions (issue 27): the same outcome as one
session, nothing left behind, and a session that dies fails the audit without deciding it."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest

from dtsen.programs import load_programs
from dtsen.publish.audit import audit_version
from dtsen.publish.in_sessions import build_candidate_in_sessions
from dtsen.rank.model import load_model
from dtsen.warehouse import engine
from tests.factories import sample_first_round_in

SCRATCH_TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname = 'scratch_audit'"


@pytest.fixture
def candidate(scratch_database, tmp_path, request):
    """The sample's first round merged and its candidate built and committed, not audited yet."""
    url = scratch_database(f"audit_sessions_{request.node.name[-20:]}")
    with sample_first_round_in(url, tmp_path, "aduan_outcomes"):
        built = build_candidate_in_sessions(
            engine.connect, "2026-Q1", (load_model(), load_programs(), None), sessions=1
        )
        with psycopg.connect(engine.libpq_conninfo(url), autocommit=True) as conn:
            yield url, conn, built.version


def _serial(url: str, version: int):
    """The outcome one session reaches, in a transaction rolled back."""
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        outcome = audit_version(conn, version)
        conn.rollback()
    return outcome


def _audited(version: int):
    with engine.connect() as conn:
        outcome = audit_version(conn, version, connect=engine.connect, sessions=2)
        conn.commit()
    return outcome


def test_an_audit_in_two_sessions_reaches_the_outcome_of_one(candidate, caplog):
    url, conn, version = candidate
    reference = _serial(url, version)
    with caplog.at_level(logging.INFO, logger="dtsen"):
        outcome = _audited(version)
    shares = [r.getMessage() for r in caplog.records if " share " in r.getMessage()]
    assert any("members share 2/2 computed" in line for line in shares), shares
    assert any("families share 1/2 computed" in line for line in shares), shares
    assert (outcome.status, outcome.checks, outcome.drift_flagged) == (
        reference.status,
        reference.checks,
        reference.drift_flagged,
    )
    observed = {c["rule"]: c["observed"] for c in outcome.checks}
    assert outcome.status == "AUDITED" and len(observed) > 5
    stored = conn.execute(
        "SELECT status, audit->'checks' FROM publish.version WHERE version = %s", (version,)
    )
    assert stored.fetchone() == ("AUDITED", reference.checks)
    assert conn.execute(SCRATCH_TABLES).fetchone()[0] == 0


def test_a_share_session_killed_fails_the_audit_and_the_next_one_decides(candidate):
    url, conn, version = candidate
    reference = _serial(url, version)
    outcome: dict = {}

    def audit():
        try:
            outcome["result"] = _audited(version)
        except Exception as exc:  # noqa: BLE001 (the test looks at it)
            outcome["error"] = exc

    with psycopg.connect(engine.libpq_conninfo(url)) as blocker:
        blocker.execute("LOCK TABLE publish.keluarga_span IN ACCESS EXCLUSIVE MODE")  # the shares wait
        auditor = threading.Thread(target=audit)
        auditor.start()
        deadline = time.monotonic() + 120
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'dtsen-audit-%' "
            "AND wait_event_type = 'Lock'"
        )
        while conn.execute(waiting).fetchone()[0] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dtsen-audit-1'"
        )
        blocker.rollback()
    auditor.join(timeout=300)
    assert isinstance(outcome.get("error"), psycopg.Error), outcome
    row = conn.execute("SELECT status, audit FROM publish.version WHERE version = %s", (version,)).fetchone()
    assert row == ("CANDIDATE", None)

    again = _audited(version)  # clears what the first attempt's surviving share committed
    assert (again.status, again.checks) == (reference.status, reference.checks)
    assert conn.execute(SCRATCH_TABLES).fetchone()[0] == 0
