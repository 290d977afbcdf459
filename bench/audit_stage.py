"""The audit stage alone, in one session and in several (issue 27).

    .venv/bin/python bench/audit_stage.py --database dtsen_national_3000000_s1 --sessions 1 2 --out bench/results/audit_stage.jsonl

Takes a database `bench/national.py` left behind (both rounds published) and audits each of its
versions again as a candidate, once per session count and repeat: the version is set back to
CANDIDATE in the audit's own transaction, which is rolled back at the end, so the database stays as
it was (the shares' tables the sessions commit are dropped by that transaction's clear or by the next
audit). The first version is a first load's (every person and family checked), the second a
quarterly round's (what changed). Each session count alternates with the others, and the median of
`--repeat` runs is kept: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import psycopg
from common import emit, header
from sqlalchemy.engine import make_url

from dtsen.publish.audit import audit_version
from dtsen.warehouse import engine

KINDS = {1: "first_load", 2: "quarterly"}


def audit_once(url: str, version: int, sessions: int) -> float:
    def connect() -> psycopg.Connection:
        return psycopg.connect(engine.libpq_conninfo(url))

    with connect() as conn:
        conn.execute(
            "UPDATE publish.version SET status = 'CANDIDATE', audit = NULL WHERE version = %s", (version,)
        )
        conn.execute("DELETE FROM publish.recipient_drift WHERE version = %s", (version,))
        started = time.perf_counter()
        outcome = audit_version(conn, version, connect=connect if sessions > 1 else None, sessions=sessions)
        seconds = time.perf_counter() - started
        assert outcome.status in ("AUDITED", "BLOCKED"), outcome.status
        conn.rollback()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    url = make_url(engine.database_url()).set(database=args.database).render_as_string(hide_password=False)
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        persons = conn.execute("SELECT count(*) FROM registry.person").fetchone()[0]
    seconds: dict[str, dict[str, list[float]]] = {}
    for version, kind in KINDS.items():
        runs: dict[int, list[float]] = {s: [] for s in args.sessions}
        for _ in range(args.repeat):
            for sessions in args.sessions:
                runs[sessions].append(audit_once(url, version, sessions))
        seconds[kind] = {str(s): [round(x, 2) for x in r] for s, r in runs.items()}
    medians = {kind: {s: statistics.median(r) for s, r in by.items()} for kind, by in seconds.items()}
    point = header("audit_stage", 27) | {
        "database": args.database,
        "persons": persons,
        "seconds": seconds,
        "median_seconds": {k: {s: round(v, 2) for s, v in m.items()} for k, m in medians.items()},
    }
    if "1" in medians["quarterly"]:
        point["over_one_session"] = {
            kind: {s: round(m["1"] / v, 2) for s, v in m.items() if s != "1"} for kind, m in medians.items()
        }
    emit(point, args.out)


if __name__ == "__main__":
    main()
