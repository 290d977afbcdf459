"""dtsen_update_round: one quarterly DTSEN update round, landing zone to published version.

The round's steps (dtsen.round.STEPS), one task each, in their order; every step is idempotent, so
clearing a failed task reruns it safely. Nothing here touches the warehouse at parse time.
"""

from __future__ import annotations

from airflow.sdk import chain, dag
from airflow.timetables.trigger import CronTriggerTimetable

from dtsen.airflow_support import approval_task, default_args, extract_review_task, round_params, step_task
from dtsen.config import settings
from dtsen.round import STEP

DOC = """
### DTSEN update round

Takes what pemda, BPS and Kemensos delivered to the landing zone for a round, validates it (Great
Expectations, reason codes from the data contract), merges it into the registry, writes each
submission's feedback and emails each region, ranks families, audits the candidate version and
publishes it. Publication emits the `dtsen://versions` asset, which starts `dtsen_notify_programs`.

**Trigger form** (empty = the setting): `round_id` (YYYY-Qn; empty = the quarter that ended before
the run), `landing_root` (`DTSEN_LANDING_ROOT`), `dry_run` (validate, then rehearse the merge,
ranking and audit and roll them back: the registry stays as it was, nothing is published, no one is
emailed), `approve_drift` with a required `approval_reason` (publish a candidate whose only failed
checks are drift), `quality_gate_threshold` (`DTSEN_QUALITY_GATE_THRESHOLD`).

Rounds run one at a time (`max_active_runs=1`, and warehouse-side locks). Every failure emails data
ops. Data and configuration errors fail at once (retrying cannot help); anything else is retried
with backoff.
"""


@dag(
    dag_id="dtsen_update_round",
    schedule=CronTriggerTimetable(settings().round_schedule, timezone="Asia/Jakarta"),
    # No start_date: with one (and catchup=False) Airflow still runs the latest past schedule date
    # the moment the DAG is first unpaused, a surprise round of the previous quarter ahead of the
    # one data ops trigger. Without it the first scheduled run is the next date to come.
    catchup=False,
    # Unpaused on creation: a deployment runs its rounds on schedule with no one to unpause it, and
    # the schedule has no backfill to fear.
    is_paused_upon_creation=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["dtsen", "round"],
    doc_md=DOC,
    params=round_params(),
)
def dtsen_update_round():
    submissions = step_task(STEP["open_round"])()  # returns the round's submissions
    review = extract_review_task(STEP["extract_review"])  # a held Dukcapil extract waits for a person here
    validated = step_task(STEP["stage_and_validate"]).expand(submission=submissions)
    chain(
        submissions,
        review,
        validated,
        step_task(STEP["finish_validation"])(),
        step_task(STEP["merge"])(),
        step_task(STEP["integrity"])(),
        step_task(STEP["cases"])(),
        step_task(STEP["feedback"])(),
        step_task(STEP["notify_regions"])(),
        step_task(STEP["aduan_outcomes"])(),
        step_task(STEP["rank_and_audit"])(),
        approval_task(STEP["approval"]),
        step_task(STEP["publish"])(),
    )


dtsen_update_round()
