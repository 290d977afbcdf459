"""The main job on bundled sample data: warehouse up and migrated, sample rounds in the landing zone.

Each sample round is validated, merged, ranked, audited and published as a DTSEN version; the
version summary and the ranking's quality against the sample's hidden welfare are printed.
"""

from __future__ import annotations

import csv
import filecmp
import os
import shutil
from collections import Counter
from pathlib import Path

from dtsen.config import settings
from dtsen.contract import SUBMISSION_FILES
from dtsen.paths import SAMPLE_DIR
from dtsen.report import format_round, format_version, round_report
from dtsen.round import RoundContext, run_round
from dtsen.warehouse import engine
from dtsen.warehouse.migrate import migrate
from dtsen_dev.evaluate import score_ranking
from dtsen_dev.local_airflow import (
    LOCAL_SMTP_PORT,
    MailSink,
    airflow_env,
    free_port,
    mail_lines,
    migrate_airflow_db,
    run_round_through_airflow,
)

SAMPLE_LANDING = SAMPLE_DIR / "landing"
SAMPLE_TRUTH = SAMPLE_DIR / "truth"


class LandingConflict(RuntimeError):
    pass


def install_sample_landing(landing_root: Path, sample: Path = SAMPLE_LANDING) -> tuple[int, int]:
    """Copy the sample rounds into the landing zone; returns (copied, already identical).

    A file that already exists with different bytes is never overwritten: the landing zone holds
    what sources delivered, and silently replacing it would destroy evidence.
    """
    copied = same = 0
    for src in sorted(p for p in sample.rglob("*") if p.is_file()):
        dst = landing_root / src.relative_to(sample)
        if dst.exists():
            if not filecmp.cmp(src, dst, shallow=False):
                raise LandingConflict(f"{dst} exists with different content; refusing to overwrite it")
            same += 1
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        copied += 1
    return copied, same


def _data_rows(path: Path) -> int:
    """Records in a CSV file (quoted newlines counted correctly), streamed."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def landing_summary(landing_root: Path) -> list[str]:
    lines = []
    for round_dir in sorted(p for p in landing_root.iterdir() if p.is_dir() and p.name != "reference"):
        lines.append(f"round {round_dir.name}")
        for source, specs in SUBMISSION_FILES.items():
            for sub in sorted(p for p in (round_dir / source).glob("*") if p.is_dir()):
                counts = ", ".join(
                    f"{spec.file_name}={_data_rows(sub / spec.file_name)}"
                    for spec in specs
                    if (sub / spec.file_name).exists()
                )
                lines.append(f"  {source:<8} {sub.name:<24} {counts}")
    for snap in sorted((landing_root / "reference" / "dukcapil").glob("*/penduduk.csv")):
        lines.append(f"dukcapil snapshot {snap.parent.name}: {_data_rows(snap)} persons")
    return lines


def truth_summary(truth_root: Path = SAMPLE_TRUTH) -> list[str]:
    lines = []
    for cases in sorted(truth_root.glob("*/cases.csv")):
        with open(cases, newline="", encoding="utf-8") as fh:
            codes = Counter(
                code
                for row in csv.DictReader(fh)
                for code in (row.get("expected_codes") or "").split(";")
                if code
            )
        listed = ", ".join(f"{code}={n}" for code, n in sorted(codes.items()))
        lines.append(f"  {cases.parent.name}: {listed}")
    return lines


def run_demo(landing_root: str | Path | None = None, via_airflow: bool = True) -> int:
    cfg = settings()
    landing = Path(landing_root) if landing_root else cfg.landing_root
    url = engine.database_url()
    print(f"warehouse: {engine.describe_target(url)}")
    with engine.connect() as conn:  # set-up: the schema and reference data (rounds refuse to run without)
        report = migrate(conn)
        ref_counts = conn.execute(
            "SELECT (SELECT count(*) FROM ref.provinsi), (SELECT count(*) FROM ref.kabupaten), "
            "(SELECT count(*) FROM ref.kecamatan), (SELECT count(*) FROM ref.desa)"
        ).fetchone()
    print(f"migrations: {len(report.applied)} applied now, {len(report.already)} already applied")
    print("reference: {} provinces, {} regencies/cities, {} districts, {} villages".format(*ref_counts))
    if not SAMPLE_LANDING.is_dir():
        print(f"no bundled sample at {SAMPLE_LANDING}")
        return 1
    copied, same = install_sample_landing(landing)
    print(f"landing zone {landing}: {copied} files copied, {same} already present")
    print("\n".join(landing_summary(landing)))
    print("injected cases in the sample's ground truth (expected reason codes):")
    print("\n".join(truth_summary()))
    rounds = sorted(p.name for p in landing.iterdir() if p.is_dir() and p.name != "reference")
    if via_airflow:
        _rounds_through_airflow(rounds)
    else:
        _rounds_directly(rounds, landing)
    print(f"\nfeedback for regions in {cfg.publish_root / 'feedback'}")
    print(f"published versions in {cfg.publish_root / 'versions'}")
    return 0


def _print_round(round_id: str) -> None:
    """The round's report and its version, read back from the warehouse, and the ranking's quality."""
    cfg = settings()
    with engine.connect() as conn:
        report = round_report(conn, round_id, cfg.publish_root)
        print("\n".join(format_round(report)))
        if report.version is not None:
            print("\n".join(format_version(conn, report.version)))
            truth = SAMPLE_TRUTH / round_id
            if truth.is_dir():
                print("  " + score_ranking(conn, report.version, truth).line())


def _rounds_directly(rounds: list[str], landing: Path) -> None:
    """The same steps without Airflow (`dtsen-dev demo --no-airflow`); mail goes to the outbox."""
    for round_id in rounds:
        print(f"\nround {round_id}: the round's steps (dtsen.round.STEPS), in order")
        run_round(RoundContext.create(round_id, landing_root=landing))
        _print_round(round_id)
    print(f"\nmail written to {settings().outbox} (set DTSEN_SMTP_URL to send it)")


def _rounds_through_airflow(rounds: list[str]) -> None:
    """Each round through the real Airflow runtime (dag.test of dtsen_update_round, then of
    dtsen_notify_programs), with mail delivered to a local SMTP sink listed at the end."""
    port = free_port(LOCAL_SMTP_PORT)
    env = airflow_env(port)
    os.environ.update(env)  # before Airflow is first imported: it reads its configuration then
    print(
        f"\nAirflow: home {env['AIRFLOW_HOME']}, DAGs {env['AIRFLOW__CORE__DAGS_FOLDER']}; mail sink 127.0.0.1:{port}"
    )
    migrate_airflow_db(env)
    with MailSink(port) as sink:
        for round_id in rounds:
            print(
                f'\nround {round_id}: airflow dags test dtsen_update_round -c \'{{"round_id": "{round_id}"}}\''
            )
            state, states, _ = run_round_through_airflow(round_id)
            done = ", ".join(
                f"{task}={s}" for task, s in states.items() if not task.startswith("stage_and_validate[")
            )
            validated = sum(
                1 for t, s in states.items() if t.startswith("stage_and_validate[") and s == "success"
            )
            print(f"  run {state}: {validated} submissions validated; {done}")
            print(f"  (task logs in {Path(env['AIRFLOW_HOME']) / 'dag-test.log'})")
            _print_round(round_id)
        print(f"\nmail delivered to the local SMTP sink ({len(sink.messages)} messages):")
        print("\n".join(mail_lines(sink.messages)))
