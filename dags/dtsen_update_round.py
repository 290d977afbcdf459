"""dtsen_update_round: one quarterly DTSEN update round, landing zone to published version.

Thin wiring of dtsen.tasks; every task is idempotent, so clearing a failed task reruns it safely.
Nothing here touches the warehouse at parse time.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.timetables.trigger import CronTriggerTimetable

from dtsen import tasks
from dtsen.airflow_support import VERSIONS_NAME, VERSIONS_URI, default_args, round_for, run_step, send_email
from dtsen.publish.version import PUBLISHABLE, RELEASED

VERSIONS = Asset(uri=VERSIONS_URI, name=VERSIONS_NAME)

DOC = """
### DTSEN update round

Takes what pemda, BPS and Kemensos delivered to the landing zone for a round, validates it (Great
Expectations, reason codes from the data contract), merges it into the registry, ranks families,
audits the candidate version and publishes it, then writes each submission's feedback and emails
each region. Publication emits the `dtsen://versions` asset, which starts `dtsen_notify_programs`.

**Trigger form**: `round_id` (YYYY-Qn; empty = the quarter that ended before the run),
`landing_root` (empty = `DTSEN_LANDING_ROOT`), `dry_run` (stop at the audited candidate: nothing is
published and no region or program owner is emailed; the registry is merged), `approve_drift` with
a required `approval_reason` (publish a candidate whose only failed checks are drift),
`quality_gate_threshold`.

Rounds run one at a time (`max_active_runs=1`, and warehouse-side locks). Every failure emails data
ops. Data and configuration errors fail at once (retrying cannot help); anything else is retried
with backoff.
"""


@dag(
    dag_id="dtsen_update_round",
    schedule=CronTriggerTimetable(
        os.environ.get("DTSEN_ROUND_SCHEDULE", "0 2 5 1,4,7,10 *"), timezone="Asia/Jakarta"
    ),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["dtsen", "round"],
    doc_md=DOC,
    params={
        "round_id": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-Q[1-4]$",
            description="Round to run, YYYY-Qn. Empty: the quarter that ended before this run.",
        ),
        "landing_root": Param(
            None, type=["null", "string"], description="Landing zone root. Empty: DTSEN_LANDING_ROOT."
        ),
        "dry_run": Param(
            False,
            type="boolean",
            description="Validate, merge and build and audit the candidate, but publish nothing "
            "and email no one.",
        ),
        "approve_drift": Param(
            False,
            type="boolean",
            description="Publish even if the audit flags drift (never other failed checks).",
        ),
        "approval_reason": Param(
            None,
            type=["null", "string"],
            description="Required with approve_drift: why the drift is expected (recorded).",
        ),
        "quality_gate_threshold": Param(
            0.2,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of failed rows above which a whole submission is rejected.",
        ),
    },
)
def dtsen_update_round():
    @task(
        multiple_outputs=True,
        doc_md="""Migrate the warehouse, register the round, load and check the
    Dukcapil snapshot, list the round's submissions. **If it fails**: a missing round folder or bad
    round id is a data error (check the landing zone and the trigger form); otherwise see the log.""",
    )
    def prepare() -> dict:
        context = get_current_context()
        params = context["params"]
        if params.get("approve_drift") and not (params.get("approval_reason") or "").strip():
            raise AirflowFailException("approve_drift needs an approval_reason")
        round_id = params.get("round_id") or round_for(context["logical_date"])
        return run_step(tasks.prepare_round, round_id, params.get("landing_root"))

    @task(
        max_active_tis_per_dagrun=4,
        doc_md="""Check, stage (COPY) and validate one submission. A bad
    submission ends REJECTED with a reason code and never fails its neighbours. **If it fails**: a
    database or disk problem; clear the task once fixed (it resumes where it stopped).""",
    )
    def stage_and_validate(submission: dict) -> dict:
        params = get_current_context()["params"]
        return run_step(
            tasks.stage_and_validate_submission,
            submission["round_id"],
            submission["source"],
            submission["submission_id"],
            params.get("landing_root"),
        )

    @task(
        doc_md="""Cross-row and cross-source rules, the quality gate and
    NIK-repair suggestions, then the round is VALIDATED. Waits for every submission: a submission task
    that failed (a system error; bad data never fails a task) must be cleared and succeed first, or its
    rows would be neither merged nor rejected. **If it fails**: see the log; rerun after fixing.""",
    )
    def finish_validation(prepared: dict, _validated: list) -> dict:
        round_id = prepared["round_id"]
        params = get_current_context()["params"]
        return run_step(tasks.finish_round_validation, round_id, params.get("quality_gate_threshold"))

    @task(
        doc_md="""Merge the round into the registry in one transaction (conflicts, moves, deaths,
    history). **If it fails** with an invariant violation, nothing changed: the log names the
    invariant; fix the input (or the rule) and clear the task."""
    )
    def merge(finished: dict) -> dict:
        return run_step(tasks.merge, finished["round_id"])

    @task(doc_md="""Write every submission's ringkasan.json and ditolak.csv (masked, Indonesian).""")
    def feedback(merged: dict) -> dict:
        return {
            "round_id": merged["round_id"],
            "reports": run_step(tasks.write_feedback, merged["round_id"]),
        }

    @task(
        doc_md="""Email each region the summary of its submissions and where its ditolak.csv is.
    Skipped on a dry run. Each email goes once, even if the task is retried."""
    )
    def notify_regions(written: dict) -> dict:
        if get_current_context()["params"].get("dry_run"):
            raise AirflowSkipException("dry run: regions are not emailed")
        from dtsen.notify.deliver import notify_regions as deliver
        from dtsen.notify.subscribers import load_subscribers
        from dtsen.warehouse import engine

        with engine.connect() as conn:
            return deliver(conn, written["round_id"], written["reports"], load_subscribers(), send_email)

    @task(
        doc_md="""Rank every family, select program recipients and audit the candidate version with
    Great Expectations. A failed audit emails data ops and blocks publication (the current version
    stays current); trigger again with approve_drift and a reason to publish drifted candidates."""
    )
    def rank_and_audit(merged: dict) -> dict:
        round_id = merged["round_id"]
        params = get_current_context()["params"]
        reason = params.get("approval_reason") if params.get("approve_drift") else None
        outcome = run_step(tasks.build_and_audit, round_id, reason, "airflow-trigger")
        if outcome["status"] == "BLOCKED":
            from dtsen.notify.messages import audit_blocked_email
            from dtsen.notify.subscribers import load_subscribers

            send_email(
                audit_blocked_email(
                    load_subscribers().data_ops, round_id, outcome["version"], outcome["report"]
                )
            )
        return outcome

    @task(
        outlets=[VERSIONS],
        doc_md="""Write versions/<N>/ atomically (files, then manifest, then
    rename) and record it; emits the dtsen://versions asset. Skipped on a dry run or a blocked audit.""",
    )
    def publish(candidate: dict) -> dict:
        context = get_current_context()
        if context["params"].get("dry_run"):
            raise AirflowSkipException(f"dry run: version {candidate['version']} stays a candidate")
        if candidate["status"] not in PUBLISHABLE + RELEASED:
            raise AirflowSkipException(
                f"version {candidate['version']} is {candidate['status']}: not published"
            )
        published = run_step(tasks.publish, candidate["version"])
        context["outlet_events"][VERSIONS].extra = {
            "version": published["version"],
            "round_id": published["round_id"],
        }
        return published

    @task(doc_md="The round's submissions, one mapped validation task each.")
    def submissions(prepared: dict) -> list[dict]:
        return [{"round_id": prepared["round_id"], **s} for s in prepared["submissions"]]

    prepared = prepare()
    validated = stage_and_validate.expand(submission=submissions(prepared))
    merged = merge(finish_validation(prepared, validated))
    notify_regions(feedback(merged))
    publish(rank_and_audit(merged))


dtsen_update_round()
