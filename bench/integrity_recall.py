"""Recall and precision of the integrity checks on generated worlds with injected schemes (issue 15).

    .venv/bin/python bench/integrity_recall.py --persons 4000 --rounds 4
    .venv/bin/python bench/integrity_recall.py --persons 1000000 --rounds 4 --regencies 40

A world generated with `--schemes` (seed 7) goes through the round's own steps; then, per round, the
flags are compared with the generator's truth (truth/<round>/skema_integritas.csv):
  - village surges: recall = injected villages flagged / injected villages; false flags = villages
    flagged without a scheme, as a share of the villages with new families (and of every village of
    the regencies) that had no scheme;
  - account schemes: recall over the injected accounts; false flags among the regular accounts;
  - implausible rules, per version: recall = injected contradictory families the rule lists /
    injected ones still in the registry (and among those ranked in desil 1-5), precision = listed
    families that were injected / listed families (the rest are real families that meet the rule).
Targets (issue 15): recall of injected schemes >= 0.9 while flagging <= 5% of villages without one.
This measures detection, not speed: any warehouse will do (DTSEN_DATABASE_URL, else the private one).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import time
from collections import defaultdict
from pathlib import Path

import psycopg
from common import emit, fresh_database, generated_world

from dtsen.round import RoundContext, run_round
from dtsen.warehouse import engine


def _truth(world: Path, round_id: str) -> list[dict]:
    path = world / "truth" / round_id / "skema_integritas.csv"
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def splits_scores(conn: psycopg.Connection, round_id: str, truth: list[dict]) -> dict:
    villages = {t["kode_wilayah"] for t in truth if t["scheme"] == "VILLAGE_SURGE"}
    accounts = {t["akun"] for t in truth if t["scheme"] == "ACCOUNT_SCHEME"}
    surge_accounts = {t["akun"] for t in truth if t["scheme"] == "VILLAGE_SURGE"}
    flagged = defaultdict(set)
    for scope, key in conn.execute(
        "SELECT f.scope, f.key FROM quality.integrity_flag f JOIN ingest.round r USING (round_seq) "
        "WHERE r.round_id = %s",
        (round_id,),
    ):
        flagged[scope].add(key)
    with_new = {
        k
        for (k,) in conn.execute(
            "SELECT v.kode_wilayah FROM quality.integrity_village v JOIN ingest.round r USING (round_seq) "
            "WHERE r.round_id = %s",
            (round_id,),
        )
    }
    all_villages = conn.execute(
        "SELECT count(*) FROM ref.desa WHERE kabupaten_kode IN (SELECT DISTINCT s.kode_wilayah FROM ingest.submission s "
        "JOIN ingest.round r USING (round_seq) WHERE r.round_id = %s AND s.source = 'pemda')",
        (round_id,),
    ).fetchone()[0]
    regular = {
        a
        for (a,) in conn.execute(
            "SELECT a.submitted_by FROM quality.integrity_account a JOIN ingest.round r USING (round_seq) "
            "WHERE r.round_id = %s",
            (round_id,),
        )
    } - accounts
    false_villages = flagged["DESA"] - villages
    return {
        "village_schemes": len(villages),
        "village_schemes_found": len(villages & flagged["DESA"]),
        "village_recall": _share(len(villages & flagged["DESA"]), len(villages)),
        "villages_flagged_without_scheme": len(false_villages),
        "false_flag_share_of_villages_with_new_families": _share(
            len(false_villages), len(with_new - villages)
        ),
        "false_flag_share_of_all_villages": _share(len(false_villages), all_villages - len(villages)),
        "account_schemes": len(accounts),
        "account_schemes_found": len(accounts & flagged["AKUN"]),
        "account_recall": _share(len(accounts & flagged["AKUN"]), len(accounts)),
        "regular_accounts": len(regular),
        "regular_accounts_flagged": len(regular & flagged["AKUN"]),
        "regular_accounts_flagged_that_carried_a_village_surge": len(
            regular & flagged["AKUN"] & surge_accounts
        ),
    }


def implausible_scores(conn: psycopg.Connection, version: int, injected: dict[str, set[int]]) -> dict:
    listed = defaultdict(set)
    for rule, no_kk in conn.execute(
        "SELECT rule, no_kk FROM publish.implausible WHERE version = %s", (version,)
    ):
        listed[rule].add(no_kk)
    desil = dict(
        conn.execute(
            "SELECT no_kk, desil FROM publish.keluarga WHERE version = %s AND no_kk = ANY(%s)",
            (version, [k for keys in injected.values() for k in keys]),
        ).fetchall()
    )
    scores = {}
    for rule, keys in sorted(injected.items()):
        present = {k for k in keys if k in desil}
        poor = {k for k in present if desil[k] <= 5}
        found = present & listed[rule]
        scores[rule] = {
            "injected_in_registry": len(present),
            "injected_in_desil_1_5": len(poor),
            "recall": _share(len(found), len(present)),
            "recall_in_desil_1_5": _share(len(poor & listed[rule]), len(poor)),
            "listed": len(listed[rule]),
            "precision": _share(len(found), len(listed[rule])),
        }
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--regencies", type=int, default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/integrity_recall.jsonl"))
    args = parser.parse_args()
    name = f"gen-{args.persons}-r{args.rounds}-schemes" + (f"-k{args.regencies}" if args.regencies else "")
    started = time.monotonic()
    world = generated_world(args.persons, args.rounds, args.work, name, args.regencies, ("--schemes",))
    generated = time.monotonic() - started
    os.environ["DTSEN_DATABASE_URL"] = fresh_database(f"dtsen_integrity_{args.persons}")
    os.environ["DTSEN_RAW_ROOT"] = str(args.work / f"raw-{name}")
    os.environ["DTSEN_OUTBOX"] = str(args.work / f"outbox-{name}")
    publish_root = args.work / f"publish-{name}"
    rounds = sorted(p.name for p in (world / "landing").iterdir() if p.name != "reference")
    per_round, injected = [], defaultdict(set)
    for round_id in rounds:
        summaries = run_round(
            RoundContext.create(round_id, landing_root=world / "landing", publish_root=publish_root)
        )
        truth = (
            _truth(world, round_id) if (world / "truth" / round_id / "skema_integritas.csv").exists() else []
        )
        for t in truth:
            if t["scheme"] == "CONTRADICTION":
                injected[t["rule"]].add(int(t["no_kk"]))
        with psycopg.connect(engine.libpq_conninfo(os.environ["DTSEN_DATABASE_URL"])) as conn:
            entry = {
                "round": round_id,
                "integrity_step": summaries["integrity"].get("counts") or summaries["integrity"],
            }
            if summaries["integrity"].get("scored"):
                entry["splits"] = splits_scores(conn, round_id, truth)
            version = summaries["rank_and_audit"]["version"]
            if injected:
                entry["implausible"] = implausible_scores(conn, version, injected)
        per_round.append(entry)
    scored = [r["splits"] for r in per_round if "splits" in r]
    villages = sum(r["village_schemes"] for r in scored)
    accounts = sum(r["account_schemes"] for r in scored)
    result = {
        "bench": "integrity_recall",
        "date": dt.date.today().isoformat(),
        "persons": args.persons,
        "rounds": args.rounds,
        "regencies": args.regencies,
        "generation_seconds": round(generated),
        "overall": {
            "village_schemes": villages,
            "village_recall": _share(sum(r["village_schemes_found"] for r in scored), villages),
            "account_schemes": accounts,
            "account_recall": _share(sum(r["account_schemes_found"] for r in scored), accounts),
            "worst_false_flag_share_of_villages_with_new_families": max(
                (r["false_flag_share_of_villages_with_new_families"] or 0 for r in scored), default=None
            ),
            "implausible_last_version": per_round[-1].get("implausible"),
        },
        "targets": {"recall": ">= 0.9", "villages_flagged_without_scheme": "<= 5%"},
        "per_round": per_round,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
