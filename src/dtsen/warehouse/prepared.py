"""Writes split over several sessions that commit together: two-phase commit.

PostgreSQL runs INSERT and UPDATE in one backend, whatever the cores. A stage whose writes split by
key (disjoint rows, disjoint unique-index entries) runs each share in a session of its own; each
session ends with PREPARE TRANSACTION, which makes its writes durable but invisible. The stage's
coordinator then commits its own transaction, which records the decision (for a candidate: the
version row), and only then commits the prepared ones. Whatever dies where, the outcome is one of two:
  - before the decision commits: no share is visible; `resolve_in_doubt` rolls the prepared ones back;
  - after: the decision stands; `resolve_in_doubt` commits the prepared shares it finds.
So resolve_in_doubt runs, under the stage's lock, before the stage runs again.

The server must allow prepared transactions (max_prepared_transactions >= sessions); where it does
not, the caller writes in one session (`capacity`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

log = logging.getLogger(__name__)


def capacity(conn: psycopg.Connection) -> int:
    """How many prepared transactions the server allows at once (0: none)."""
    return int(conn.execute("SHOW max_prepared_transactions").fetchone()[0])


def in_doubt(conn: psycopg.Connection, prefix: str) -> list[str]:
    """This database's prepared transactions whose id starts with `prefix`."""
    rows = conn.execute(
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, %s) "
        "ORDER BY gid",
        (prefix,),
    ).fetchall()
    return [gid for (gid,) in rows]


def resolve_in_doubt(conn: psycopg.Connection, prefix: str, decided: Callable[[str], bool]) -> dict[str, int]:
    """Commit the prepared shares whose decision was recorded (`decided(gid)`), roll back the others.
    `conn` must be in autocommit (COMMIT PREPARED cannot run inside a transaction) and hold the
    stage's lock, so no live coordinator's shares are judged."""
    outcome = {"committed": 0, "rolled_back": 0}
    for gid in in_doubt(conn, prefix):
        if decided(gid):
            conn.execute(f"COMMIT PREPARED '{_quoted(gid)}'")
            outcome["committed"] += 1
        else:
            conn.execute(f"ROLLBACK PREPARED '{_quoted(gid)}'")
            outcome["rolled_back"] += 1
    if any(outcome.values()):
        log.warning(
            "an earlier run stopped between its writers and its decision: %d prepared share(s) committed, "
            "%d rolled back (%s)",
            outcome["committed"],
            outcome["rolled_back"],
            prefix,
        )
    return outcome


def commit_prepared(conn: psycopg.Connection, gids: list[str]) -> None:
    """Commit the shares once the decision is committed (`conn` in autocommit)."""
    for gid in gids:
        conn.execute(f"COMMIT PREPARED '{_quoted(gid)}'")


def _quoted(gid: str) -> str:
    # ids are built here from a fixed prefix and integers; quoting keeps the statement well-formed anyway
    return gid.replace("'", "''")


@dataclass
class Share:
    group: int
    gid: str
    seconds: float = 0.0
    rows: int = 0
    error: BaseException | None = None
    prepared: bool = False


@dataclass
class PreparedWriters:
    """Run `write(conn, group, n)` for group 0..n-1, each in its own session and transaction, prepared
    as `<prefix><group>of<n>`. Either every share is prepared, or none is left behind (the failed
    share's transaction aborted, the others rolled back) and the first error is raised."""

    connect: Callable[[], psycopg.Connection]
    prefix: str
    sessions: int
    shares: list[Share] = field(default_factory=list)

    def run(self, write: Callable[[psycopg.Connection, int, int], int]) -> list[str]:
        self.shares = [Share(k, f"{self.prefix}{k}of{self.sessions}") for k in range(self.sessions)]
        threads = [
            threading.Thread(target=self._one, args=(share, write), name=f"dtsen-writer-{share.group}")
            for share in self.shares
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        failed = [s for s in self.shares if s.error is not None]
        if failed:
            self._roll_back()
            raise failed[0].error  # type: ignore[misc]
        return [s.gid for s in self.shares]

    def _one(self, share: Share, write: Callable[[psycopg.Connection, int, int], int]) -> None:
        started = time.perf_counter()
        try:
            with self.connect() as conn:
                conn.execute(
                    "SELECT set_config('application_name', %s, false)", (f"dtsen-writer-{share.group}",)
                )
                conn.commit()
                share.rows = write(conn, share.group, self.sessions)
                conn.execute(f"PREPARE TRANSACTION '{_quoted(share.gid)}'")
                share.prepared = True
                conn.commit()  # ends the client's view of the transaction; the server keeps it prepared
        except BaseException as exc:  # noqa: BLE001 (re-raised by run, after the others are undone)
            share.error = exc
        share.seconds = time.perf_counter() - started

    def _roll_back(self) -> None:
        prepared = [s.gid for s in self.shares if s.prepared]
        if not prepared:
            return
        with self.connect() as conn:
            conn.autocommit = True
            for gid in prepared:
                conn.execute(f"ROLLBACK PREPARED '{_quoted(gid)}'")
