"""The merge's per-person scratch built by several sessions at once (issue 27): a session killed while it
builds its share fails the merge and leaves the registry as it was; the next merge, by one session or
two, clears the scratch the failed one left and merges what one session merges."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time

import psycopg
import pytest

from dtsen.merge import merge_round
from dtsen.warehouse import engine
from tests.factories import sample_first_round_in

# what the merge writes, without the time a row was written
REGISTRY = {
    "person": "SELECT t::text FROM registry.person t",
    "family": "SELECT t::text FROM registry.family t",
    "membership": "SELECT t::text FROM registry.membership t",
    "field_change": "SELECT (round_seq, entity, entity_key, field, old_value, new_value, submission_pk, source)::text "
    "FROM registry.field_change",
    "rejection": "SELECT (round_seq, submission_pk, file_name, line_no, reason_code, field, key_value)::text "
    "FROM quality.rejection",
    "round": "SELECT (round_seq, status)::text FROM ingest.round",
}


def _registry(conn: psycopg.Connection) -> dict[str, str]:
    return {
        name: hashlib.sha256("\n".join(sorted(r[0] for r in conn.execute(query))).encode()).hexdigest()
        for name, query in REGISTRY.items()
    }


def _scratch_tables(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'scratch_merge'").fetchone()[0]


def _merge(round_seq: int, sessions: int):
    with engine.connect() as conn, conn.transaction():
        return merge_round(conn, round_seq, connect=engine.connect, sessions=sessions)


@pytest.fixture
def validated_first_round(scratch_database, tmp_path, request):
    """The sample's first round validated, not merged; what one session's merge makes of it."""
    url = scratch_database(f"merge_sessions_{request.node.name[-12:]}")
    with sample_first_round_in(url, tmp_path, "finish_validation"):
        with psycopg.connect(engine.libpq_conninfo(url), autocommit=True) as conn:
            round_seq = conn.execute(
                "SELECT round_seq FROM ingest.round WHERE round_id = '2026-Q1'"
            ).fetchone()[0]
            with psycopg.connect(engine.libpq_conninfo(url)) as rehearsal:
                merge_round(rehearsal, round_seq)
                reference = _registry(rehearsal)
                rehearsal.rollback()
            yield url, conn, round_seq, reference


def _wait_for(conn: psycopg.Connection, query: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not conn.execute(query).fetchone()[0]:
        assert time.monotonic() < deadline, query
        time.sleep(0.1)


GATE = 0x6D5E  # an advisory lock the shares wait on as they connect, so the test can stop them mid-build


def _gated_connect():
    """engine.connect for the merge's sessions: the first (which creates the scratch tables) as it is,
    each later one (a share) waiting at the gate first."""
    calls = itertools.count()

    def connect() -> psycopg.Connection:
        conn = engine.connect()
        if next(calls) > 0:
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (GATE,))
        return conn

    return connect


@pytest.mark.parametrize("retry_sessions", [2, 1])
def test_a_share_killed_mid_build_leaves_the_registry_and_the_next_merge_merges_what_one_session_does(
    validated_first_round, retry_sessions
):
    url, conn, round_seq, reference = validated_first_round
    before = _registry(conn)
    assert before != reference
    outcome: dict = {}

    def merge() -> None:
        try:
            with engine.connect() as coordinator, coordinator.transaction():
                merge_round(coordinator, round_seq, connect=_gated_connect(), sessions=2)
        except Exception as exc:  # noqa: BLE001 (the test looks at it)
            outcome["error"] = exc

    with psycopg.connect(engine.libpq_conninfo(url)) as blocker:
        blocker.execute("SELECT pg_advisory_lock(%s)", (GATE,))
        merging = threading.Thread(target=merge)
        merging.start()
        _wait_for(
            conn,
            f"SELECT count(*) = 2 FROM pg_locks WHERE locktype = 'advisory' AND objid = {GATE} AND NOT granted",
        )
        # both shares are at the gate, the scratch tables created: each share will insert its member
        # rows, then stop at its persons (per_new) until the blocker lets go
        blocker.execute("LOCK TABLE scratch_merge.per_new IN ACCESS EXCLUSIVE MODE")
        blocker.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
        _wait_for(
            conn,
            "SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name LIKE 'dtsen-merge-%' "
            "AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO scratch_merge.per_new%'",
        )
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dtsen-merge-1'"
        )
        blocker.rollback()  # the other share goes on and commits its rows
    merging.join(timeout=300)
    assert isinstance(outcome.get("error"), psycopg.Error)
    assert _registry(conn) == before
    assert conn.execute("SELECT count(*) > 0 FROM scratch_merge.per_new").fetchone()[
        0
    ]  # the survivor's share

    merged = _merge(round_seq, retry_sessions)
    assert not merged.already_merged
    assert _registry(conn) == reference
    assert _scratch_tables(conn) == 0
    shares = {name for name in merged.step_seconds if name.startswith("person_new")}
    assert shares == (
        {"person_new share 1/2", "person_new share 2/2"} if retry_sessions == 2 else {"person_new"}
    )
