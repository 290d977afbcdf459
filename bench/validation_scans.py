"""Benchmark: how many queries and sequential scans validating one staged file costs, per file kind.

    .venv/bin/python bench/validation_scans.py --persons 200000

A fresh database gets a generated round-1 landing zone opened (the Dukcapil snapshot is validated as
part of it) and every submission staged and validated by the round's own step function. For each
validated file (and the snapshot) it records, inside the step's transaction:
- queries: statements sent to the warehouse while the file was validated (GE's included);
- seq_scans: sequential scans of the staging partition holding the file (pg_stat_xact_user_tables);
- seconds: wall time of the validation of that file (suite + row-level rejections).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import psycopg
from common import emit, fresh_database, generated_world

from dtsen.contract import FileKind
from dtsen.validate import round as validate_round
from dtsen.warehouse import engine

ROUND = "2026-Q1"
SUMMED = ("rows", "rejections", "queries", "seq_scans", "index_scans", "seconds")


class CountingCursor(psycopg.Cursor):
    """A cursor that counts the statements sent through it (SQLAlchemy's too: it borrows the connection)."""

    sent = 0

    def execute(self, query, params=None, **kwargs):
        CountingCursor.sent += 1
        return super().execute(query, params, **kwargs)


def table_reads(conn: psycopg.Connection, prefix: str) -> tuple[int, int, int]:
    """(sequential scans, index scans, rows read) this transaction made of staging partitions prefix*."""
    return tuple(
        int(v)
        for v in conn.execute(
            "SELECT coalesce(sum(seq_scan), 0), coalesce(sum(idx_scan), 0), "
            "coalesce(sum(seq_tup_read), 0) + coalesce(sum(idx_tup_fetch), 0) "
            "FROM pg_stat_xact_user_tables WHERE schemaname = 'staging' AND relname LIKE %s",
            (prefix + "%",),
        ).fetchone()
    )


def measured(conn: psycopg.Connection, kind: FileKind, rows: int, run) -> dict:
    before, sent_before = table_reads(conn, kind.value), CountingCursor.sent
    started = time.monotonic()
    run()
    seconds = time.monotonic() - started
    after = table_reads(conn, kind.value)
    return {
        "kind": kind.value,
        "rows": rows,
        "queries": CountingCursor.sent - sent_before - 1,  # less the read counter's own query
        "seq_scans": after[0] - before[0],
        "index_scans": after[1] - before[1],
        # rows read from staging over the file's rows: how many times the file was read
        "passes": round((after[2] - before[2]) / max(rows, 1), 1),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=200_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path, help="append the result as a JSON line here")
    args = parser.parse_args()
    landing = generated_world(args.persons, 1, args.work, name=f"gen-{args.persons}") / "landing"
    url = fresh_database(f"dtsen_bench_scans_{args.persons}", engine.database_url())
    from dtsen.ingest.opening import ingest_one_submission, open_round

    raw_root = args.work / f"raw-scans-{args.persons}"
    measurements = []
    original_validate = validate_round.validate_file

    def validate_file_measured(conn, batch, file_name):
        holder = {}
        rows = conn.execute(
            "SELECT rows_received FROM ingest.submission_file WHERE submission_pk = %s AND file_name = %s",
            (batch.submission_pk, file_name),
        ).fetchone()[0]
        measurements.append(
            measured(
                conn,
                batch.kind,
                rows,
                lambda: holder.setdefault("r", original_validate(conn, batch, file_name)),
            )
        )
        measurements[-1]["rejections"] = holder["r"][1]
        return holder["r"]

    validate_round.validate_file = validate_file_measured
    with psycopg.connect(engine.libpq_conninfo(url), cursor_factory=CountingCursor) as conn:
        with conn.transaction():
            snapshot_holder = {}

            def open_it():
                snapshot_holder["opened"] = open_round(conn, ROUND, landing_root=landing, raw_root=raw_root)

            open_it()
            opened = snapshot_holder["opened"]
        for submission in opened.submissions:
            with conn.transaction():
                outcome = ingest_one_submission(
                    conn,
                    ROUND,
                    submission.source,
                    submission.submission_id,
                    landing_root=landing,
                    raw_root=raw_root,
                )
                if outcome.submission_pk is not None:
                    validate_round.validate_submission(conn, outcome.submission_pk)
        with conn.transaction():
            snapshot_pk = opened.snapshot.snapshot_pk
            conn.execute("DELETE FROM quality.snapshot_suite_result WHERE snapshot_pk = %s", (snapshot_pk,))
            snapshot = measured(
                conn,
                FileKind.DUKCAPIL_PENDUDUK,
                opened.snapshot.rows_received,
                lambda: validate_round.validate_snapshot(conn, snapshot_pk),
            )
    by_kind: dict[str, dict] = {}
    for m in measurements:
        total = by_kind.setdefault(m["kind"], dict.fromkeys(("files", *SUMMED), 0))
        total["files"] += 1
        for k in SUMMED:
            total[k] += m[k]
        total["passes_max"] = max(total.get("passes_max", 0), m["passes"])
    for total in by_kind.values():
        for k in ("queries", "seq_scans", "index_scans"):
            total[f"{k}_per_file"] = round(total.pop(k) / total["files"], 1)
        total["seconds"] = round(total["seconds"], 1)
    result = {
        "bench": "validation_scans",
        "persons": args.persons,
        "per_kind": by_kind,
        "dukcapil_snapshot": snapshot,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
