"""The Dukcapil stage alone, with serial plans and with parallel workers (issue 27).

    .venv/bin/python bench/dukcapil_stage.py --size 3000000 --workers 0 1 --out bench/results/dukcapil_stage.jsonl

For each worker count, a fresh database loads the generated world's two Dukcapil extracts in order
(the first load: every line new; the quarterly one: about 1% differs), each as open_round does it:
the extract compared with the reference and applied (`ingest_latest_snapshot`), then the snapshot's
row rules and suite (`validate_snapshot`). `--workers` is the parallel workers a plan may use
(max_parallel_workers_per_gather); 0 is serial. Each statement of the comparison logs its progress
line as in a round; the point records each extract's seconds per worker count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import time
from pathlib import Path

import psycopg
from common import emit, fresh_database, generated_world

from dtsen.ingest.dukcapil import ingest_latest_snapshot
from dtsen.validate.round import validate_snapshot
from dtsen.warehouse import engine

EXTRACTS = {"first_load": dt.date(2026, 3, 31), "quarterly": dt.date(2026, 6, 30)}  # the rounds' cut-offs


def measure(world: Path, work: Path, workers: int) -> dict[str, float]:
    url = fresh_database(f"dtsen_dukcapil_stage_w{workers}")
    raw = work / f"raw-dukcapil-stage-w{workers}"
    shutil.rmtree(raw, ignore_errors=True)
    seconds = {}
    for kind, as_of in EXTRACTS.items():
        with psycopg.connect(engine.libpq_conninfo(url)) as conn:
            conn.execute(f"SET max_parallel_workers_per_gather = {int(workers)}")
            started = time.perf_counter()
            loaded = ingest_latest_snapshot(conn, world / "landing", raw, as_of)
            validate_snapshot(conn, loaded.snapshot_pk)
            conn.commit()
            seconds[kind] = round(time.perf_counter() - started, 1)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    world = generated_world(args.size, 2, args.work)
    by_workers = {w: measure(world, args.work, w) for w in args.workers}
    point = {
        "bench": "dukcapil_stage",
        "size": args.size,
        "date": dt.date.today().isoformat(),
        "seconds": {str(w): s for w, s in by_workers.items()},
    }
    if 0 in by_workers:
        point["over_serial"] = {
            str(w): {k: round(by_workers[0][k] / s[k], 2) for k in EXTRACTS}
            for w, s in by_workers.items()
            if w
        }
    emit(point, args.out)


if __name__ == "__main__":
    main()
