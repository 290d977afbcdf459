"""Benchmark: discover + stage + validate + rejections + feedback of one generated round, against the
physical limit of this machine (a plain COPY of the same files into an unlogged table), in one run.

    .venv/bin/python bench/ingest_validate.py --persons 1000000 5000000

Each size gets a fresh database on the warehouse server and a generated round-1 landing zone
(cached under --work so reruns skip generation). The end-to-end stage runs in a child process so its
peak RSS is measured alone. Targets (issue 3): end-to-end >= 0.3 x raw COPY rate; peak RSS < 1 GiB
at every size. The submission files are also timed on their own (everything after open_round,
against a raw COPY of the submission files only): the Dukcapil extract's first load is part of the
whole, and its quarterly cost has its own benchmark (bench/dukcapil_diff.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import fresh_database, generated_world, raw_copy_rate

from dtsen.warehouse import engine

ROUND = "2026-Q1"


def generate(persons: int, work: Path) -> Path:
    return generated_world(persons, 1, work, name=f"gen-{persons}") / "landing"


def data_files(landing: Path) -> list[Path]:
    files = sorted(p for p in (landing / ROUND).rglob("*.csv"))
    return files + sorted((landing / "reference" / "dukcapil").glob("*/penduduk.csv"))


CHILD = """
import json, resource, sys, time
from dataclasses import replace
from dtsen.report import round_report
from dtsen.round import STEP, RoundContext, run_round
from dtsen.warehouse import engine
ctx = RoundContext.create(sys.argv[1], landing_root=sys.argv[2], publish_root=sys.argv[3])
started = time.monotonic()
done = run_round(ctx, only=("open_round",))
opened = time.monotonic()
for submission in done["open_round"]["submissions"]:
    STEP["stage_and_validate"].run(replace(ctx, submission=submission))
for name in ("finish_validation", "feedback"):
    STEP[name].run(ctx)
elapsed = time.monotonic() - started
with engine.connect() as conn:
    report = round_report(conn, ctx.round_id, ctx.settings.publish_root)
submission_rows = sum(sum(s.received.values()) for s in report.submissions)
rows = submission_rows + done["open_round"]["dukcapil_rows"]
print(json.dumps({"elapsed": elapsed, "rows": rows, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "submission_rows": submission_rows, "submission_seconds": elapsed - (opened - started),
                  "rejected_rows": sum(s.rejected_rows for s in report.submissions)}))
"""


def end_to_end(url: str, landing: Path, publish: Path) -> dict:
    env = dict(os.environ, DTSEN_DATABASE_URL=url, DTSEN_RAW_ROOT=str(publish.parent / "raw"))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, ROUND, str(landing), str(publish)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    args = parser.parse_args()
    server = engine.database_url()
    for persons in args.persons:
        landing = generate(persons, args.work)
        files = data_files(landing)
        url = fresh_database(f"dtsen_bench_{persons}", server)
        e2e = end_to_end(url, landing, args.work / f"publish-{persons}")
        raw_url = fresh_database(f"dtsen_bench_raw_{persons}", server)
        raw_rows, raw_seconds = raw_copy_rate(raw_url, files)
        sub_url = fresh_database(f"dtsen_bench_raw_sub_{persons}", server)
        sub_rows, sub_seconds = raw_copy_rate(sub_url, [f for f in files if "dukcapil" not in f.parts])
        e2e_rows = e2e["rows"]  # every row of the same files: submissions and the Dukcapil snapshot
        result = {
            "persons": persons,
            "end_to_end_rows": e2e_rows,
            "end_to_end_seconds": round(e2e["elapsed"], 1),
            "end_to_end_rows_per_s": round(e2e_rows / e2e["elapsed"]),
            "raw_copy_rows": raw_rows,
            "raw_copy_seconds": round(raw_seconds, 1),
            "raw_copy_rows_per_s": round(raw_rows / raw_seconds),
            "ratio": round((e2e_rows / e2e["elapsed"]) / (raw_rows / raw_seconds), 3),
            "peak_rss_mib": round(e2e["peak_rss_mib"]),
            "submission_files": {
                "rows": e2e["submission_rows"],
                "seconds": round(e2e["submission_seconds"], 1),
                "raw_copy_seconds": round(sub_seconds, 1),
                "ratio": round(
                    (e2e["submission_rows"] / e2e["submission_seconds"]) / (sub_rows / sub_seconds), 3
                ),
            },
            "rejected_rows": e2e["rejected_rows"],
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
