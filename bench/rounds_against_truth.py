"""Benchmark and accuracy check: generated rounds 1-3 of a large world through validate + merge,
each scored against the generator's ground truth (issue 4's "a bench script on 1M persons").

    .venv/bin/python bench/rounds_against_truth.py --persons 1000000

Per round it prints one JSON line: seconds for stage+validate+merge, the merge's share, precision and
recall per reason code (only codes that are not perfect are listed), whether the registry equals the
expected registry for every person and family, the NIK-repair suggestions' precision and recall, and
(issue 5) the round's publication: seconds, and how well the ranking recovers the hidden welfare.
The world is generated once under --work and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import psycopg
from common import fresh_database, generated_world

from dtsen.contract import ROW_LEVEL_CODES
from dtsen.report import round_report
from dtsen.round import RoundContext, run_round
from dtsen.warehouse import engine
from dtsen_dev.evaluate import score_nik_repairs, score_ranking, score_registry, score_rejections


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--world", type=Path, default=None, help="an existing world, e.g. data/sample")
    args = parser.parse_args()
    world = args.world or generated_world(args.persons, args.rounds, args.work)
    url = fresh_database(f"dtsen_truth_{args.persons if args.world is None else world.name}")
    os.environ["DTSEN_DATABASE_URL"] = url
    os.environ["DTSEN_RAW_ROOT"] = str(args.work / f"raw-truth-{args.persons}")
    publish = args.work / f"publish-truth-{args.persons}"
    rounds = sorted(p.name for p in (world / "truth").iterdir() if p.is_dir())
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        for round_id in rounds:
            ctx = RoundContext.create(round_id, landing_root=world / "landing", publish_root=publish)
            started = time.monotonic()
            done = run_round(ctx, until="feedback")  # the round's own steps, through the merge
            total = time.monotonic() - started
            report = round_report(conn, round_id, publish)
            truth = world / "truth" / round_id
            rejections = score_rejections(conn, truth, round_id, set(ROW_LEVEL_CODES))
            registry = score_registry(conn, truth)
            repair = score_nik_repairs(conn, truth, round_id)
            conn.commit()  # end the read transaction: the next round creates partitions (needs locks)
            started = time.monotonic()
            published = run_round(ctx, only=("rank_and_audit", "publish"))
            publish_seconds = time.monotonic() - started
            audited = published["rank_and_audit"]
            ranking = score_ranking(conn, audited["version"], truth)
            conn.commit()
            rows = sum(sum(s.received.values()) for s in report.submissions)
            print(
                json.dumps(
                    {
                        "round": round_id,
                        "input_rows": rows,
                        "seconds_total": round(total, 1),
                        "seconds_merge": round(sum(report.merge["step_seconds"].values()), 1),
                        "changes": done["merge"]["changes"],
                        "conflict_lost": done["merge"]["conflict_lost"],
                        "codes_not_perfect": {
                            c: {"expected": s.expected, "found": s.found, "tp": s.true_positive}
                            for c, s in rejections.codes.items()
                            if s.precision < 1 or s.recall < 1
                        },
                        "codes_checked": len(rejections.codes),
                        "registry_equal": registry.equal(),
                        "persons": [
                            registry.persons_expected,
                            registry.persons_actual,
                            registry.persons_differing,
                        ],
                        "families": [
                            registry.families_expected,
                            registry.families_actual,
                            registry.families_differing,
                        ],
                        "nik_repair": {
                            "repairable": repair.repairable,
                            "unrepairable": repair.unrepairable,
                            "suggested": repair.suggested,
                            "correct": repair.correct,
                            "wrong": repair.wrong,
                            "suggested_for_unrepairable": repair.suggested_for_unrepairable,
                            "precision": round(repair.precision, 4),
                            "recall": round(repair.recall, 4),
                        },
                        "publication": {
                            "version": audited["version"],
                            "seconds": round(publish_seconds, 1),
                            "audit_passed": audited["audit_passed"],
                            "published": "skipped" not in published["publish"],
                        },
                        "ranking": {
                            "spearman": round(ranking.spearman, 4),
                            "inclusion_error": round(ranking.inclusion_error, 4),
                            "exclusion_error": round(ranking.exclusion_error, 4),
                            "same_desil": round(ranking.desil_exact, 4),
                        },
                    },
                    default=str,
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
