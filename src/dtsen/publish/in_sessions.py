"""A candidate built with its spans written by several sessions at once, all or nothing.

The round's rank step builds here (dtsen.publish.candidate holds the build itself): the version is
worked out in committed scratch tables, each session writes a disjoint share of the spans and
prepares it (dtsen.warehouse.prepared), and the transaction that inserts the version row decides.
Owns the connections it opens and their transactions.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import psycopg

from dtsen.integrity.config import IntegrityConfig
from dtsen.programs import ProgramSet
from dtsen.publish.candidate import (
    PUBLISH_LOCK_KEY,
    SCRATCH,
    CandidatePlan,
    CandidateSummary,
    applied,
    apply_share,
    build_candidate,
    clear_scratch,
    compute,
    family_local,
    family_share_statements,
    finish,
    plan_candidate,
    settle,
    share_bounds,
)
from dtsen.rank.model import RankingModel
from dtsen.warehouse.prepared import PreparedWriters, capacity, commit_prepared, resolve_in_doubt
from dtsen.warehouse.sessions import each_in_a_session, key_cuts, share_part

log = logging.getLogger(__name__)

PREPARED_PREFIX = "dtsen:candidate:"  # two-phase commit ids: dtsen:candidate:v<version>:r<round_seq>:<k>of<n>


Rules = tuple[RankingModel, ProgramSet, IntegrityConfig | None]  # what a candidate is ranked and checked by


def build_candidate_in_sessions(
    connect: Callable[[], psycopg.Connection],
    round_id: str,
    rules: Rules | Callable[[psycopg.Connection], Rules],
    sessions: int = 1,
) -> CandidateSummary:
    """Build the round's candidate, its spans written by `sessions` sessions at once (each a disjoint
    share by key, dtsen.warehouse.prepared), all or nothing: the transaction that inserts the version
    row decides it. Owns its transactions; works out the version first in committed scratch tables
    (left behind by a crash, cleared by the next build). One session, or a server without prepared
    transactions: the whole build in one transaction.

    `rules` may be a function reading them from the warehouse (the adopted model): it is called under
    the build's publication lock, so a second build at once waits for the whole first one and then
    reads what that one left."""
    with connect() as conn:
        conn.autocommit = True
        conn.execute("SELECT pg_advisory_lock(%s)", (PUBLISH_LOCK_KEY,))  # held across the transactions
        try:
            if callable(rules):
                with conn.transaction():
                    rules = rules(conn)
            model, programs, integrity = rules
            resolve_in_doubt(conn, PREPARED_PREFIX, lambda gid: _decided(conn, gid))
            allowed = capacity(conn)
            if sessions > 1 and allowed < sessions:
                log.info(
                    "candidate spans written by one session: the warehouse allows %d prepared transactions "
                    "(max_prepared_transactions), %d sessions need as many",
                    allowed,
                    sessions,
                )
            if sessions <= 1 or allowed < sessions:
                with conn.transaction():
                    return build_candidate(conn, round_id, model, programs, integrity)
            return _build_in_sessions(conn, connect, round_id, model, programs, integrity, sessions)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (PUBLISH_LOCK_KEY,))


def _build_in_sessions(
    conn: psycopg.Connection,
    connect: Callable[[], psycopg.Connection],
    round_id: str,
    model: RankingModel,
    programs: ProgramSet,
    integrity: IntegrityConfig | None,
    sessions: int,
) -> CandidateSummary:
    path = conn.execute("SELECT current_setting('search_path')").fetchone()[0]
    scratch_path = f"{SCRATCH}, {path}"
    with conn.transaction():
        plan = plan_candidate(conn, round_id, model, programs, integrity)
        if isinstance(plan, CandidateSummary):
            return plan
        conn.execute("SELECT set_config('search_path', %s, true)", (scratch_path,))
        clear_scratch(conn)
        before, block, after = family_local(plan.compute)
        parts = [name for name, _ in before]
        parts += [share_part(name, k, sessions) for k in range(sessions) for name, _ in block]
        parts += [name for name, _ in after] + ["apply"]
        compute(conn, plan, before, parts)
        ranges = _family_ranges(conn, sessions)
    # committed: the sessions computing the family-local block read what the statements before wrote
    _compute_family_shares(connect, plan, block, ranges, scratch_path)
    with conn.transaction():
        conn.execute("SELECT set_config('search_path', %s, true)", (scratch_path,))
        compute(conn, plan, after)
        shares = share_bounds(conn, sessions)

    def write(worker: psycopg.Connection, group: int, groups: int) -> int:
        worker.execute("SELECT set_config('search_path', %s, true)", (scratch_path,))
        return apply_share(worker, plan, shares[group])

    started = time.perf_counter()
    writers = PreparedWriters(connect, f"{PREPARED_PREFIX}v{plan.version}:r{plan.round_seq}:", sessions)
    gids = writers.run(write)
    applied(plan, sum(w.rows for w in writers.shares), started)
    log.info(
        "candidate v%s: spans written by %d sessions (%s)",
        plan.version,
        sessions,
        ", ".join(f"{w.rows:,} rows in {w.seconds:.1f} s" for w in writers.shares),
    )
    with conn.transaction():  # the decision: the version row and its counts
        conn.execute("SELECT set_config('search_path', %s, true)", (scratch_path,))
        finish(conn, plan, sessions)
    commit_prepared(conn, gids)
    with conn.transaction():
        plan.summary.programs = settle(conn, plan.version, plan.previous, plan.programs)
    with conn.transaction():
        conn.execute("SELECT set_config('search_path', %s, true)", (scratch_path,))
        clear_scratch(conn)
    return plan.summary


def _family_ranges(conn: psycopg.Connection, sessions: int) -> list[tuple[int | None, int | None]]:
    """Each session's range of KK numbers [low, high) for the family-local block: cut where the
    histogram of the members decided again (recheck_member, analysed by the build) puts equal shares
    of them; without statistics, evenly between the smallest and largest KK."""
    cuts = key_cuts(conn, f"{SCRATCH}.recheck_member", "no_kk", sessions)
    edges = [None, *cuts, None]
    return list(zip(edges, edges[1:], strict=False))


def _compute_family_shares(
    connect: Callable[[], psycopg.Connection],
    plan: CandidatePlan,
    block: list[tuple[str, str]],
    ranges: list[tuple[int | None, int | None]],
    scratch_path: str,
) -> None:
    """The family-local block (the eligibility context and the recipients) computed by one session
    per range of KK numbers at once, each committing the recipients it inserts into the scratch
    table new_recipient (a crash leaves them to the next build's clearing, like every scratch table).
    Each statement of each share is a part of the build's progress and a timing of its summary."""

    def one(worker: psycopg.Connection, k: int) -> None:
        worker.execute("SELECT set_config('search_path', %s, true)", (scratch_path,))
        for name, statement in family_share_statements(block, plan.programs, *ranges[k]):
            part = share_part(name, k, len(ranges))
            started = time.perf_counter()
            rows = worker.execute(statement, plan.params).rowcount
            plan.summary.step_seconds[part] = time.perf_counter() - started
            plan.progress.finished(part, rows, plan.summary.step_seconds[part])

    each_in_a_session(connect, len(ranges), "family", one)


def _decided(conn: psycopg.Connection, gid: str) -> bool:
    """A share of version v's spans is decided when v's row exists for the round it was built for."""
    found = re.fullmatch(re.escape(PREPARED_PREFIX) + r"v(\d+):r(\d+):\d+of\d+", gid)
    if not found:
        return False
    return bool(
        conn.execute(
            "SELECT 1 FROM publish.version WHERE version = %s AND round_seq = %s",
            (int(found.group(1)), int(found.group(2))),
        ).fetchone()
    )
