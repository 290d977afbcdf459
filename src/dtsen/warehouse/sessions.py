"""Work split over several warehouse sessions at once, each committing its own share (issue 27): the
audit's members and families, the candidate's family-local statements. Not for writes that must be
all or nothing across sessions (those prepare: dtsen.warehouse.prepared)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg

T = TypeVar("T")


def key_cuts(conn: psycopg.Connection, table: str, key: str, shares: int) -> list[int]:
    """Where to cut `table`'s (schema.name, analysed) `key` into `shares` ranges of about equal rows:
    at its histogram (pg_stats, kept by ANALYZE), at no cost; without statistics, evenly between
    the smallest and largest key."""
    schema, name = table.split(".")
    found = conn.execute(
        "SELECT histogram_bounds::text::bigint[] FROM pg_stats WHERE schemaname = %s AND tablename = %s "
        "AND attname = %s",
        (schema, name, key),
    ).fetchone()
    if found and found[0]:
        keys = found[0]
        return [keys[round(k * (len(keys) - 1) / shares)] for k in range(1, shares)]
    low, high = conn.execute(f"SELECT min({key}), max({key}) FROM {table}").fetchone()  # noqa: S608 (our names)
    low, high = low or 0, high or 0
    return [low + (high - low) * k // shares for k in range(1, shares)]


def share_part(name: str, share: int, shares: int) -> str:
    """How share `share` (from 0) of `shares` names its part of a statement in progress lines and
    timings: "<name> share 1/2"."""
    return f"{name} share {share + 1}/{shares}"


def each_in_a_session(
    connect: Callable[[], psycopg.Connection],
    shares: int,
    label: str,
    work: Callable[[psycopg.Connection, int], T],
) -> list[T]:
    """Run `work(session, k)` for each share k at once, each in a session of its own (application
    name dtsen-<label>-<k>) that commits when its work returns. Every session ends before the first
    error is raised; what the others committed stays (the caller's scratch, cleared by its next run).
    The results, by share."""
    results: list[T | None] = [None] * shares
    errors: list[BaseException] = []

    def one(k: int) -> None:
        try:
            with connect() as session:
                session.execute("SELECT set_config('application_name', %s, false)", (f"dtsen-{label}-{k}",))
                results[k] = work(session, k)
                session.commit()
        except BaseException as exc:  # noqa: BLE001 (raised below, once every session has ended)
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(k,), name=f"dtsen-{label}-{k}") for k in range(shares)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value] (every share returned)
