"""A model fit at scale (issue 25, target: fitting at 10M persons with 1% measured, under 10 minutes
here, peak RSS < 2 GiB).

    .venv/bin/python bench/model_fit_scale.py --persons 1000000 --rounds 2 \
        --out bench/results/2026-12-05-issue-25-model-fit-scale.json

A `regional` world (BPS measures --bps-share of the families each round, the generator's default 5%)
goes through its rounds' own steps in a database of its own; then `dtsen model fit` runs (the cycle's
own fit_model: training frame, penalty search, nested cross-validation, targeting errors at the
national thresholds, impact on the version, the card) in a child process, with its wall time, peak RSS
and each part's seconds.

A 10M world is too slow to build here (~40-80 min for its first load alone). So the parts are scaled
by what they read: the training frame, the fit and the cross-validation grow with the measured
families, and 2 rounds of 5% of a 1M world's ~300k families are ~30k, what 1% of a 10M world's ~3.0M
families is: taken as measured. The targeting errors (every fold model's national thresholds: one
feature query over the version's population) and the impact (the version re-scored) grow with the
population: multiplied by 10M / the world's persons. The estimate is their sum.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import emit, generated_world, header, run_rounds

NATIONAL_SIZE = 10_000_000
BY_MEASURED = ("training_frame", "fit", "cross_validate")
BY_POPULATION = ("evaluate", "impact")


def fit_in_child() -> dict:
    """`fit_model` in a child process (the database of DTSEN_DATABASE_URL): its summary, wall seconds
    and peak RSS."""
    code = (
        "import json, logging, resource; logging.basicConfig(level=logging.INFO);"
        "from dtsen.model.cycle import fit_model; summary = fit_model(by='bench');"
        "print(json.dumps(summary | {'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))"
    )
    started = time.monotonic()
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall = time.monotonic() - started
    summary = json.loads(child.stdout.strip().splitlines()[-1])
    return summary | {"wall_seconds": round(wall, 1), "log": child.stderr.strip().splitlines()[-8:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bps-share", type=float, default=0.05)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    name = f"model-fit-regional-{args.persons}-r{args.rounds}-bps{args.bps_share}"
    options = ("--relation", "regional", "--bps-share", str(args.bps_share))
    started = time.monotonic()
    world = generated_world(args.persons, args.rounds, args.work, name, None, options)
    generated = json.loads((world / "summary.json").read_text())
    rounds = run_rounds(world, args.work, name)
    rounds_seconds = time.monotonic() - started
    fitted = fit_in_child()
    seconds = fitted["seconds"]
    factor = NATIONAL_SIZE / args.persons
    estimate = sum(seconds[p] for p in BY_MEASURED) + factor * sum(seconds[p] for p in BY_POPULATION)
    other = fitted["wall_seconds"] - sum(seconds.values())  # imports, connecting, the card
    result = {
        **header("model_fit_scale", 25),
        "world": {
            "persons": args.persons,
            "rounds": args.rounds,
            "relation": "regional",
            "bps_share_per_round": args.bps_share,
            "generator_summary_config": generated.get("config"),
        },
        "rounds": rounds,
        "rounds_seconds": round(rounds_seconds, 1),
        "fit": fitted,
        "national_estimate": {
            "persons": NATIONAL_SIZE,
            "measured_families": fitted["families"],
            "rule": f"{' + '.join(BY_MEASURED)} as measured (they grow with the measured families) + "
            f"{factor:g} x ({' + '.join(BY_POPULATION)}) (they grow with the population) + the rest as measured",
            "seconds": round(estimate + other, 1),
            "peak_rss_mib_measured": fitted["peak_rss_mib"],
        },
    }
    result["table"] = [
        "| measure | target | measured |",
        "|---|---|---|",
        f"| fitting at 10M persons with 1% measured | under 10 minutes here, peak RSS < 2 GiB | `dtsen model "
        f"fit` on a {args.persons:,}-person world with {fitted['families']:,} measured families: "
        f"{fitted['wall_seconds']:.0f} s, peak RSS {fitted['peak_rss_mib']} MiB; at 10M (population parts "
        f"x{factor:g}): {estimate + other:.0f} s |",
    ]
    emit(json.loads(json.dumps(result, default=str)), args.out)
    print("\n".join(result["table"]))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
