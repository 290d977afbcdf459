"""A generated world's rounds through the real Airflow runtime, to read their progress (issue 27, item 4).

    .venv/bin/python bench/airflow_round.py --size 1000000

The two rounds of the generated world (seed 7, as bench/national.py) run as `dtsen_update_round`
(`dag.test()`, in process, as the main job runs them) in a database of their own, with mail to a
local SMTP sink. The task logs go to <work>/airflow-<size>/dag-test.log; the progress lines of
every task (logger dtsen.progress: names, counts and seconds, never a value of a row) are copied,
in order, to --out with each task's state and the time each took, so the kept file shows what a
person watching the Airflow log of such a round sees while it runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import time
from pathlib import Path

from common import finish_generation, fresh_database, machine, start_generation

ROUNDS = ("2026-Q1", "2026-Q2")
# a dtsen.progress line as Airflow's task log writes it, and the line that opens a task's log
PROGRESS = re.compile(r"dtsen\.progress")
TASK = re.compile(r"\[DAG TEST\] starting task_id=")


def progress_lines(log: Path, since: int) -> list[str]:
    """The progress lines written to `log` after byte `since`, each under the task it came from."""
    with log.open("rb") as fh:
        fh.seek(since)
        text = fh.read().decode("utf-8", "replace")
    return [line.rstrip() for line in text.splitlines() if PROGRESS.search(line) or TASK.search(line)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path, required=True, help="where the progress lines are kept")
    args = parser.parse_args()

    world, generating = start_generation(args.size, 2, args.work, name=f"gen-{args.size}-r2")
    finish_generation(generating)
    home = args.work / f"airflow-{args.size}"
    folders = {
        name: args.work / f"{name.lower()}-airflow-{args.size}" for name in ("RAW", "PUBLISH", "OUTBOX")
    }
    for folder in folders.values():  # a fresh warehouse: nothing of an earlier run may be taken for its own
        shutil.rmtree(folder, ignore_errors=True)
    os.environ |= {
        "DTSEN_DATABASE_URL": fresh_database(f"dtsen_airflow_{args.size}"),
        "DTSEN_LANDING_ROOT": str(world / "landing"),
        "DTSEN_RAW_ROOT": str(folders["RAW"]),
        "DTSEN_PUBLISH_ROOT": str(folders["PUBLISH"]),
        "DTSEN_OUTBOX": str(folders["OUTBOX"]),
    }
    # Airflow reads its configuration when first imported: the environment comes first
    from dtsen_dev.local_airflow import (
        MailSink,
        airflow_env,
        free_port,
        migrate_airflow_db,
        run_round_through_airflow,
    )

    port = free_port()
    env = airflow_env(port, home=home)
    os.environ |= env
    migrate_airflow_db(env)
    log = home / "dag-test.log"
    log.unlink(missing_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with MailSink(port) as sink, args.out.open("w") as out:
        out.write(
            f"# bench/airflow_round.py --size {args.size}, {dt.date.today()}, {json.dumps(machine())}\n"
        )
        for round_id in ROUNDS:
            since = log.stat().st_size if log.exists() else 0
            started = time.monotonic()
            state, states, version = run_round_through_airflow(round_id)
            took = time.monotonic() - started
            summary = {"round": round_id, "state": state, "version": version, "seconds": round(took, 1)}
            print(json.dumps(summary | {"tasks": states}), flush=True)
            out.write(f"# {json.dumps(summary | {'tasks': states})}\n")
            out.write("\n".join(progress_lines(log, since)) + "\n")
        print(json.dumps({"mail": len(sink.messages), "log": str(log), "kept": str(args.out)}), flush=True)


if __name__ == "__main__":
    main()
