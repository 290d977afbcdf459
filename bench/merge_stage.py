"""The merge stage alone: one session with serial plans, one session with parallel plans, and two
sessions (the per-person scratch split by NIK), alternated, the median of `--repeat` runs (issue 27).

    .venv/bin/python bench/merge_stage.py --size 1000000 --out bench/results/merge_stage.jsonl

Brings a generated world's first round (a first load) to VALIDATED in a fresh database through the
round's own steps, then merges it once per configuration and repeat in a transaction that is rolled
back, so every run starts from the same registry (what the shares commit to the merge's scratch is
dropped by the next merge); then merges it for real, brings the quarterly round to VALIDATED and does
the same for it. Configurations alternate and each keeps its median: the machine is shared and noisy,
and whole rounds run minutes apart see different machines. Beside them, in the same run, what this
machine gives two sessions of pure computation (the ceiling no stage can pass at that moment).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

import psycopg
from common import cpu_statements, emit, fresh_database, generated_world, header, in_sessions

from dtsen.merge import merge_round
from dtsen.round import RoundContext, run_round
from dtsen.warehouse import engine

ROUNDS = {"2026-Q1": "first_load", "2026-Q2": "quarterly"}
# name: (sessions, parallel workers a plan may use per session)
CONFIGS = {"one_serial": (1, 0), "one_parallel_plans": (1, 1), "two_sessions": (2, 1)}
WRITTEN = (
    "registry.person",
    "registry.membership",
    "registry.family",
    "registry.field_change",
    "registry.bps_measurement",
    "registry.round_touched",
    "quality.rejection",
)


def _connector(url: str, workers: int):
    def connect() -> psycopg.Connection:
        return psycopg.connect(
            engine.libpq_conninfo(url), options=f"-c max_parallel_workers_per_gather={workers}"
        )

    return connect


def merge_once(url: str, round_seq: int, sessions: int, workers: int) -> tuple[float, dict[str, float]]:
    """Seconds to merge the round with `sessions` sessions, rolled back; the merge's own timings."""
    connect = _connector(url, workers)
    with connect() as conn:
        started = time.perf_counter()
        summary = merge_round(conn, round_seq, connect=connect if sessions > 1 else None, sessions=sessions)
        seconds = time.perf_counter() - started
        assert not summary.already_merged
        conn.rollback()
    with psycopg.connect(engine.libpq_conninfo(url), autocommit=True) as conn:
        # what the rolled-back merge wrote is dead rows and index entries the next run would wade through
        conn.execute(f"VACUUM {', '.join(WRITTEN)}")
    return seconds, summary.step_seconds


def cpu_two_over_one(url: str) -> float:
    """Pure computation in one session against the same split in two at once (national.py's
    reference, serial plans): the machine's ceiling now."""
    return in_sessions(url, cpu_statements(1)) / in_sessions(url, cpu_statements(2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    world = generated_world(args.size, 2, args.work, name=f"gen-{args.size}-r2")
    url = fresh_database(f"dtsen_merge_stage_{args.size}")
    os.environ["DTSEN_DATABASE_URL"] = url
    os.environ["DTSEN_RAW_ROOT"] = str(args.work / f"raw-merge-stage-{args.size}")
    os.environ["DTSEN_OUTBOX"] = str(args.work / f"outbox-merge-stage-{args.size}")
    publish_root = args.work / f"publish-merge-stage-{args.size}"
    point = header("merge_stage", 27) | {"size": args.size, "repeat": args.repeat, "configs": CONFIGS}
    for round_id, kind in ROUNDS.items():
        ctx = RoundContext.create(round_id, landing_root=world / "landing", publish_root=publish_root)
        run_round(ctx, until="finish_validation")
        with psycopg.connect(engine.libpq_conninfo(url)) as conn:
            round_seq = conn.execute(
                "SELECT round_seq FROM ingest.round WHERE round_id = %s", (round_id,)
            ).fetchone()[0]
        runs: dict[str, list[float]] = {name: [] for name in CONFIGS}
        steps: dict[str, dict[str, float]] = {}
        cpu: list[float] = []
        for _ in range(args.repeat):
            for name, (sessions, workers) in CONFIGS.items():
                seconds, steps[name] = merge_once(url, round_seq, sessions, workers)
                runs[name].append(round(seconds, 2))
            cpu.append(round(cpu_two_over_one(url), 2))
        medians = {name: statistics.median(r) for name, r in runs.items()}
        point[kind] = {
            "seconds": runs,
            "median_seconds": medians,
            "over_one_serial": {n: round(medians["one_serial"] / m, 2) for n, m in medians.items()},
            "two_sessions_over_parallel_plans": round(
                medians["one_parallel_plans"] / medians["two_sessions"], 2
            ),
            "machine_cpu_two_over_one": cpu,
            "last_run_steps": {
                n: {k: round(v, 2) for k, v in s.items() if v >= 0.5} for n, s in steps.items()
            },
        }
        print(kind, point[kind]["median_seconds"], point[kind]["over_one_serial"], flush=True)
        run_round(ctx, until="merge")  # merged for real: the quarterly round merges into it
    emit(point, args.out)


if __name__ == "__main__":
    main()
