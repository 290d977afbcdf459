"""Merge a validated round into the registry: set-based SQL, invariants enforced, all in the calling
step's one transaction.

The statements live in sql/merge/person_scratch.sql and sql/merge/merge_round.sql (read as SQL, in
order). The whole round commits or nothing does: a crash or a kill at any point leaves the registry as
it was, and a merged round is never merged again. A warehouse-side advisory lock keeps two merges from
running at once even if two schedulers fire.

With several sessions (issue 27), the per-person scratch (the round's member rows, each touched
person's state after the round, the changes to record: a first load's largest reads) is built by one
session per share of NIKs at once, before the merge's own statements. Those sessions only read the
registry and write scratch tables, which they commit; the registry is still written by the merge's one
transaction, so a kill anywhere leaves it as it was, and the next merge drops what scratch is left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from dtsen import sqlfiles
from dtsen.errors import DataError, database_error_text
from dtsen.progress import Progress
from dtsen.warehouse.sessions import each_in_a_session, share_part

log = logging.getLogger(__name__)

MERGE_LOCK_KEY = 0x0D75E3
PERSON_SCRATCH = "merge/person_scratch.sql"


class MergeError(DataError):
    pass


class InvariantViolation(MergeError):
    """The merged state breaks a registry invariant; the transaction is rolled back."""


@dataclass
class MergeSummary:
    round_seq: int
    already_merged: bool = False
    changes: dict[str, int] = field(default_factory=dict)
    conflict_lost: int = 0
    step_seconds: dict[str, float] = field(default_factory=dict)  # where a slow merge spends its time


def check_invariants(
    conn: psycopg.Connection,
    round_seq: int | None,
    snapshot_pk: int | None,
    profiles: frozenset[str] = frozenset(),
) -> dict[str, int]:
    """Violations per invariant (counts only: the offending keys are personal data).

    With `round_seq`, only what that merge touched is checked; this must run inside the merge's
    transaction (it reads the merge's touched_* tables). Without, the whole registry is checked.
    """
    source = "merge/invariants_round.sql" if round_seq is not None else "merge/invariants.sql"
    found = sqlfiles.fetch(
        conn, source, {"round_seq": round_seq, "snapshot_pk": snapshot_pk}, profiles=profiles
    )
    return {name: len(rows) for name, rows in found.items() if rows}


def _profiles(conn: psycopg.Connection, round_seq: int) -> frozenset[str]:
    """A round small against the registry looks persons up by index (cost grows with the round); one
    touching most of it scans. Member rows against the registry's persons (the planner's estimate)."""
    rows, persons = conn.execute(
        "SELECT (SELECT count(*) FROM staging.pemda_anggota WHERE round_seq = %s), "
        "(SELECT coalesce(sum(greatest(c.reltuples, 0)), 0) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        " WHERE i.inhparent = 'registry.person'::regclass)",
        (round_seq,),
    ).fetchone()
    return sqlfiles.probe_when_small(rows, persons)


def _last_merge_seconds(conn: psycopg.Connection, round_seq: int) -> dict[str, float] | None:
    """What each merge statement took in the latest earlier merge (its recorded summary): the progress
    lines' estimate of what remains."""
    row = conn.execute(
        "SELECT merge_summary->'step_seconds' FROM ingest.round WHERE round_seq < %s "
        "AND merge_summary ? 'step_seconds' ORDER BY round_seq DESC LIMIT 1",
        (round_seq,),
    ).fetchone()
    return row[0] if row else None


def person_scratch_parts(sessions: int) -> list[str]:
    """The names the per-person scratch reports itself by (progress, timings): its statements, or each
    share's when `sessions` build it."""
    if sessions <= 1:
        return [s.name for s in sqlfiles.load(PERSON_SCRATCH, mode="whole")]
    return [
        share_part(s.name, k, sessions)
        for k in range(sessions)
        for s in sqlfiles.load(PERSON_SCRATCH, mode="share")
    ]


def _person_scratch(
    conn: psycopg.Connection,
    params: dict,
    profiles: frozenset[str],
    summary: MergeSummary,
    progress: Progress,
    connect: Callable[[], psycopg.Connection] | None,
    sessions: int,
) -> None:
    """Build the per-person scratch: in the merge's own transaction, or with `sessions` sessions, each
    the NIKs of its share of registry.person's hash partitions, into tables a session of their own
    created empty (all committed: scratch, which the merge drops before it commits)."""
    if connect is None or sessions <= 1:
        sqlfiles.run(conn, "merge/scratch.sql", fragments={"leftovers": "yes"})
        sqlfiles.run(
            conn,
            PERSON_SCRATCH,
            params,
            profiles=profiles,
            timings=summary.step_seconds,
            progress=progress,
            fragments={"mode": "whole"},
        )
        return

    def create(creator: psycopg.Connection, _: int) -> None:
        sqlfiles.run(creator, "merge/scratch.sql", fragments={"leftovers": "yes"})
        sqlfiles.run(creator, PERSON_SCRATCH, params, fragments={"mode": "empty"})

    each_in_a_session(connect, 1, "merge-scratch", create)  # committed before the shares insert

    def one(session: psycopg.Connection, k: int) -> None:
        sqlfiles.run(
            session,
            PERSON_SCRATCH,
            params | {"share_modulus": sessions, "share_remainder": k},
            profiles=profiles,
            timings=summary.step_seconds,
            progress=progress,
            fragments={"mode": "share"},
            part=share_part("{name}", k, sessions),
        )

    each_in_a_session(connect, sessions, "merge", one)


def merge_round(
    conn: psycopg.Connection,
    round_seq: int,
    connect: Callable[[], psycopg.Connection] | None = None,
    sessions: int = 1,
) -> MergeSummary:
    """Merge VALIDATED round `round_seq` in `conn`'s transaction (the caller commits). With `connect`
    and `sessions` > 1, that many sessions build the per-person scratch first (module docstring)."""
    summary = MergeSummary(round_seq)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MERGE_LOCK_KEY,))
    status, snapshot_pk = conn.execute(
        "SELECT status, dukcapil_snapshot_pk FROM ingest.round WHERE round_seq = %s FOR UPDATE",
        (round_seq,),
    ).fetchone()
    if status in ("MERGED", "PUBLISHED"):
        summary.already_merged = True
        return summary
    if status != "VALIDATED":
        raise MergeError(f"round #{round_seq} is {status}; only a VALIDATED round can be merged")
    unmerged_earlier = conn.execute(
        "SELECT round_id FROM ingest.round WHERE round_seq < %s AND status NOT IN ('MERGED', 'PUBLISHED') "
        "ORDER BY round_seq LIMIT 1",
        (round_seq,),
    ).fetchone()
    if unmerged_earlier:
        raise MergeError(f"round {unmerged_earlier[0]} must be merged first: rounds merge in order")
    previous = conn.execute(
        "SELECT dukcapil_snapshot_pk FROM ingest.round WHERE round_seq < %s AND status IN ('MERGED', 'PUBLISHED') "
        "ORDER BY round_seq DESC LIMIT 1",
        (round_seq,),
    ).fetchone()
    params = {
        "round_seq": round_seq,
        "snapshot_pk": snapshot_pk,
        "previous_snapshot_pk": previous[0] if previous else None,
    }
    profiles = _profiles(conn, round_seq)
    passes = profiles | {"sift"}  # the passes that keep few of many rows may go parallel
    sessions = sessions if connect is not None else 1
    progress = Progress(
        f"merge of round #{round_seq}",
        [*person_scratch_parts(sessions), *(s.name for s in sqlfiles.load("merge/merge_round.sql"))],
        _last_merge_seconds(conn, round_seq),
    )
    try:
        _person_scratch(conn, params, passes, summary, progress, connect, sessions)
        sqlfiles.run(
            conn,
            "merge/merge_round.sql",
            params,
            profiles=passes,
            timings=summary.step_seconds,
            progress=progress,
        )
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        # the data itself (a value, a key) breaks the statement: retrying cannot help. Anything else
        # (a lost connection, a restart, a deadlock, no disk) is left to retry. Named by its condition
        # only: PostgreSQL's message may quote the offending value.
        raise MergeError(f"the merge failed: {database_error_text(exc)}; nothing was changed") from exc
    if not profiles:
        # a round large against the registry (a first load) changed its size and spread: the invariant
        # checks and change counts below, and the next round's validation, plan on these statistics
        # (before a first load's checks the registry had none: 12.2 of its 51 s merge at 1M went to
        # the checks' plans for empty tables); ANALYZE samples this transaction's own rows as live
        started = time.perf_counter()
        # as the owner (meta.analyze): the round's role may not ANALYZE what it does not own
        conn.execute("SELECT meta.analyze('registry.family', 'registry.person', 'registry.membership')")
        summary.step_seconds["analyze"] = time.perf_counter() - started
    started = time.perf_counter()
    violations = check_invariants(conn, round_seq, snapshot_pk, profiles)
    summary.step_seconds["invariants"] = time.perf_counter() - started
    if violations:
        listed = ", ".join(f"{k} ({v}+ cases)" for k, v in violations.items())
        raise InvariantViolation(
            f"merge of round #{round_seq} would break registry invariants: {listed}; nothing was changed"
        )
    summary.conflict_lost = conn.execute(
        "SELECT count(*) FROM quality.rejection WHERE round_seq = %s AND reason_code = 'CONFLICT_LOST'",
        (round_seq,),
    ).fetchone()[0]
    conn.execute(
        "UPDATE ingest.submission SET status = 'MERGED', updated_at = now() "
        "WHERE round_seq = %s AND status = 'VALIDATED'",
        (round_seq,),
    )
    conn.execute(
        "UPDATE ingest.round SET status = 'MERGED', merged_at = now() WHERE round_seq = %s", (round_seq,)
    )
    started = time.perf_counter()
    summary.changes = dict(
        sqlfiles.fetch(conn, "merge/change_counts.sql", {"r": round_seq}, profiles=profiles)["change_counts"]
    )
    summary.step_seconds["change_counts"] = time.perf_counter() - started
    sqlfiles.run(conn, "merge/scratch.sql", fragments={"leftovers": ""})  # before the commit
    conn.execute(
        "UPDATE ingest.round SET merge_summary = %s WHERE round_seq = %s",
        (
            Jsonb(
                {
                    "changes": summary.changes,
                    "conflict_lost": summary.conflict_lost,
                    "step_seconds": {k: round(v, 3) for k, v in summary.step_seconds.items()},
                }
            ),
            round_seq,
        ),
    )
    return summary
