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
from dataclasses import replace
from pathlib import Path

from dtsen.config import settings
from dtsen.contract import SUBMISSION_FILES
from dtsen.paths import SAMPLE_DIR
from dtsen.report import format_round, format_steps, format_version, round_report
from dtsen.round import NOTIFY_PROGRAMS, STEPS, RoundContext, run_round
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
    print(f"what became of households' objections and proposals in {cfg.publish_root / 'aduan'}")
    return 0


def _print_round(round_id: str, summaries: dict) -> None:
    """What this run's steps did (done now, or by an earlier run), the round's report and its version,
    read back from the warehouse, and the ranking's quality."""
    cfg = settings()
    print("\n".join(format_steps(summaries)))
    with engine.connect() as conn:
        report = round_report(conn, round_id, cfg.publish_root)
        print("\n".join(format_round(report)))
        if report.version is not None:
            print("\n".join(format_version(conn, report.version)))
            truth = SAMPLE_TRUTH / round_id
            if truth.is_dir():
                print("  " + score_ranking(conn, report.version, truth).line())


def _rounds_directly(rounds: list[str], landing: Path) -> None:
    """The same steps without Airflow (`dtsen-dev demo --no-airflow`), then the program owners' notices
    of the version published, as dtsen_notify_programs would send them; mail goes to the outbox."""
    for round_id in rounds:
        print(f"\nround {round_id}: the round's steps (dtsen.round.STEPS), in order")
        ctx = RoundContext.create(round_id, landing_root=landing)
        summaries = run_round(ctx)
        published = summaries.get("publish") or {}
        if "version" in published:
            summaries["notify_programs"] = NOTIFY_PROGRAMS.run(replace(ctx, version=published["version"]))
        _print_round(round_id, summaries)
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
            state, states, version = run_round_through_airflow(round_id)
            print(f"  run {state}; tasks: {task_states(states)}")
            print(f"  (task logs in {Path(env['AIRFLOW_HOME']) / 'dag-test.log'})")
            summaries = airflow_summaries("dtsen_update_round", states)
            if version is not None:
                summaries |= airflow_summaries("dtsen_notify_programs", states)
            _print_round(round_id, summaries)
        print(f"\nmail delivered to the local SMTP sink ({len(sink.messages)} messages):")
        print("\n".join(mail_lines(sink.messages)))


def task_states(states: dict[str, str]) -> str:
    """Each task's state, the per-submission tasks counted by state (a task's success says it ran, not
    that its submission was accepted: the round's report below says how each submission ended)."""
    mapped = Counter(s for t, s in states.items() if t.startswith("stage_and_validate["))
    order = {step.name: i for i, step in enumerate(STEPS)}  # then dtsen_notify_programs
    tasks = [t for t in states if not t.startswith("stage_and_validate[")]
    shown = [f"{t}={states[t]}" for t in sorted(tasks, key=lambda t: order.get(t, len(order)))]
    if mapped:
        shown.insert(1, "stage_and_validate=" + "+".join(f"{n} {s}" for s, n in sorted(mapped.items())))
    return ", ".join(shown)


def airflow_summaries(dag_id: str, states: dict[str, str]) -> dict:
    """The step summaries of the latest run of `dag_id`, as run_round gives them, read back from its
    XComs (each task returns its step's summary; open_round keeps its own under "summary"). A task
    without one (skipped, failed) is described by its state."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    notify = dag_id == "dtsen_notify_programs"
    steps, prefix = ((NOTIFY_PROGRAMS,), f"{dag_id}.") if notify else (STEPS, "")
    key_of = {step.name: "summary" if step.fans_out else "return_value" for step in steps}
    with create_session() as session:
        run_id = session.scalar(
            select(DagRun.run_id).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc())
        )
        rows = session.execute(
            select(XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id
            )
        ).all()
    values = {
        (row.task_id, row.map_index): XComModel.deserialize_value(row)
        for row in rows
        if row.key == key_of.get(row.task_id)
    }
    summaries: dict = {}
    for step in steps:
        if step.per_submission:
            summaries[step.name] = [v for (task, _), v in sorted(values.items()) if task == step.name]
        elif (step.name, -1) in values:
            summaries[step.name] = values[(step.name, -1)]
        elif (state := states.get(prefix + step.name)) is not None:
            summaries[step.name] = (
                {"skipped": "see the task log for why"} if state == "skipped" else {"task_state": state}
            )
    return summaries
