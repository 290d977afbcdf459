"""python -m dtsen_dev.generate --persons N --rounds R --seed S --out DIR"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dtsen_dev.generate.relation import RELATIONS
from dtsen_dev.generate.run import GenConfig, generate
from dtsen_dev.generate.world import RATES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dtsen-dev generate", description=__doc__)
    parser.add_argument("--persons", type=int, required=True, help="registry size of round 1 (persons)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    parser.add_argument("--first-round", default="2026-Q1")
    parser.add_argument(
        "--regencies", type=int, default=None, help="default: one per 200k persons, at least 4"
    )
    parser.add_argument("--error-share", type=float, default=0.003, help="share of rows per injected code")
    parser.add_argument(
        "--schemes",
        action="store_true",
        help="inject integrity schemes (village split surges, an account's splits, contradictory families)",
    )
    parser.add_argument(
        "--relation",
        choices=RELATIONS,
        default="default",
        help="how proxies relate to welfare: default (the default model's world), other (other loadings,"
        " land and livestock flipped), regional (other + hidden province, regency and kelurahan offsets)",
    )
    parser.add_argument(
        "--bps-share",
        type=float,
        default=RATES["bps"],
        help=f"share of the registry's families BPS measures per round (default {RATES['bps']})",
    )
    parser.add_argument(
        "--bps-panel",
        type=float,
        default=0.0,
        help="share of each round's BPS measurements taken of families BPS measured in an earlier round"
        " (a rotating panel: two measurements of one family tell the survey's noise; default 0)",
    )
    parser.add_argument(
        "--aduan",
        type=float,
        default=0.0,
        help="share of registered families objected to or proposed per round, from the second (sanggah,"
        " usul: aduan/<id>/aduan.csv with truth, and Kemensos visits of them a round later; default 0)",
    )
    args = parser.parse_args(argv)
    for name in ("bps_share", "bps_panel", "aduan"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    summary = generate(
        GenConfig(
            args.persons,
            args.rounds,
            args.seed,
            args.out,
            args.first_round,
            args.regencies,
            args.error_share,
            args.schemes,
            args.relation,
            args.bps_share,
            args.bps_panel,
            args.aduan,
        )
    )
    print(
        json.dumps(
            {
                k: summary[k]
                for k in (
                    "regencies",
                    "elapsed_seconds",
                    "rows_written",
                    "rows_per_second",
                    "peak_rss_mib",
                    "row_level_codes_not_injected",
                )
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
