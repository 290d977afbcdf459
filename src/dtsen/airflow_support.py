"""What the DAG files share: a round step as an Airflow task, the trigger form, task defaults, email
through Airflow's SMTP provider, and the data-ops failure callback. Airflow is imported inside
functions only, so the package stays importable (and testable) without it, and nothing heavy is
imported when a DAG file is parsed.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import logging
import time
from typing import Any

from dtsen.errors import DataError, scrubbed
from dtsen.notify.messages import Email, task_failure_email

log = logging.getLogger(__name__)

SMTP_CONN_ID = "dtsen_smtp"
# published versions (contract section 4): the update DAG emits it, the notify DAG is scheduled on it
VERSIONS_URI, VERSIONS_NAME = "dtsen://versions", "dtsen_versions"
OWNER = "dtsen-data-ops"
SUBMISSIONS_AT_ONCE = 4  # per-submission tasks of one run in parallel (the executor's slots permitting)


def versions_asset():
    from airflow.sdk import Asset

    return Asset(uri=VERSIONS_URI, name=VERSIONS_NAME)


def round_params() -> dict:
    """The trigger form of dtsen_update_round. Empty means "use the setting" (DTSEN_...)."""
    from airflow.sdk import Param

    return {
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
            description="Validate, then rehearse the merge, ranking and audit and roll them back: the "
            "registry stays as it was, nothing is published and no one is emailed.",
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
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Share of failed rows above which a whole submission is rejected. "
            "Empty: DTSEN_QUALITY_GATE_THRESHOLD (default 0.20).",
        ),
    }


def round_for(logical_date: dt.datetime | dt.date) -> str:
    """The round a scheduled run works on: the last quarter that ended before the run's logical date."""
    day = logical_date.date() if isinstance(logical_date, dt.datetime) else logical_date
    ended = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1) - dt.timedelta(days=1)
    return f"{ended.year}-Q{(ended.month - 1) // 3 + 1}"


def round_context(airflow_context: dict, submission: dict | None = None):
    """The RoundContext of a task: from the trigger form, the run's logical date and the mapped submission."""
    from dtsen.config import settings
    from dtsen.round import RoundContext

    params = airflow_context["params"]
    reason = params.get("approval_reason") if params.get("approve_drift") else None
    approver = None
    if params.get("approve_drift"):
        if not (reason or "").strip():
            raise DataError("approve_drift needs an approval_reason (it is recorded with the version)")
        # the approver is whoever triggered the run, as Airflow recorded it, and must be one of the approvers
        approver = getattr(airflow_context.get("dag_run"), "triggering_user_name", None)
        if not approver or approver not in settings().approvers:
            raise DataError(
                "approve_drift is taken only from a run triggered by one of DTSEN_APPROVERS; "
                + ("this run's triggering user is not one" if approver else "this run has no triggering user")
            )
    return RoundContext.create(
        params.get("round_id") or round_for(airflow_context["logical_date"]),
        landing_root=params.get("landing_root"),
        dry_run=bool(params.get("dry_run")),
        approve_drift_reason=reason,
        approved_by=approver,
        dag_run_id=str(airflow_context.get("run_id") or "") or None,
        approval_in_airflow=True,
        quality_gate_threshold=params.get("quality_gate_threshold"),
        send=send_email,
        submission=submission,
    )


def run_step(step, ctx, airflow_context: dict | None = None) -> dict:
    """Run a round step (`ctx`: its RoundContext, or what makes it) as a task: a DataError fails it at once (no retries), StepSkipped skips it,
    anything else fails it for Airflow to retry. A step that published sets the asset event's extra.
    What fails the task reaches its log (the traceback) and the failure email: a database error in it
    is named by its condition only (dtsen.errors.scrubbed), never with the values its DETAIL quotes."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from dtsen.round import StepSkipped

    started = time.perf_counter()
    try:
        resolved = ctx() if callable(ctx) else ctx  # a bad trigger form is a data error too
        summary = step.run(resolved)
    except DataError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from scrubbed(exc)
    except StepSkipped as skipped:
        raise AirflowSkipException(str(skipped)) from skipped
    except Exception as exc:  # noqa: BLE001 (re-raised, scrubbed; still retried)
        failure = scrubbed(exc)
    else:
        failure = None
    if failure is not None:
        raise failure  # outside the handler: the original is not chained back onto it
    _step_line(
        resolved, step.name, time.perf_counter() - started, (resolved.submission or {}).get("submission_id")
    )
    if step.publishes and airflow_context is not None:
        airflow_context["outlet_events"][versions_asset()].extra = {
            "version": summary["version"],
            "round_id": summary["round_id"],
        }
    if step.fans_out and airflow_context is not None:
        # Airflow maps over a task's return value only: return the list, keep the summary beside it
        airflow_context["ti"].xcom_push(key="summary", value=summary)
        return summary[step.fans_out]
    return summary


def _step_line(ctx, name: str, seconds: float, part: str | None = None) -> None:
    """The progress line of a step run as a task (dtsen.progress): k of n among the round's steps."""
    from dtsen.progress import step_finished
    from dtsen.round import STEPS

    stage = f"round {ctx.round_id}" if ctx.round_id else f"version {ctx.version or '(current)'}"
    step_finished(stage, [s.name for s in STEPS], name, seconds, part)


def scrubbed_failures(method):
    """A task's method (an operator's execute) whose failure names a database error by its condition
    only, in the task log's traceback and the failure email, as run_step's does; still retried."""

    @functools.wraps(method)
    def run(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 (re-raised, scrubbed; TaskDeferred is no Exception)
            failure = scrubbed(exc)
        raise failure  # outside the handler: the original is not chained back onto it

    return run


def step_task(step, **task_kwargs: Any):
    """The TaskFlow task of a round step (task id = step name, doc = the step's doc). Call it in a DAG;
    a per-submission step is `.expand(submission=...)`ed."""
    from airflow.sdk import get_current_context, task

    def run(submission: dict | None = None):  # no `-> dict`: TaskFlow would split it into outputs
        context = get_current_context()
        return run_step(step, lambda: round_context(context, submission), context)

    run.__name__ = step.name
    options: dict[str, Any] = {"task_id": step.name, "doc_md": step.doc}
    if step.publishes:
        options["outlets"] = [versions_asset()]
    if step.per_submission:
        options["max_active_tis_per_dagrun"] = SUBMISSIONS_AT_ONCE
    return task(**(options | task_kwargs))(run)


def _reason_form(required: str) -> dict:
    """The HITL form's one field: why, recorded with the decision (`required` says when it must be
    given and what an answer without it does)."""
    from airflow.sdk import Param

    return {
        "reason": Param(
            "", type="string", title="Reason", description=f"Why (recorded with the decision). {required}"
        )
    }


def airflow_link(*parts: str) -> str:
    """An absolute link into this Airflow deployment (`[api] base_url`)."""
    from urllib.parse import quote

    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return "/".join([base, *(quote(p, safe="") for p in parts)])


def approval_task(step):
    """The round's approval step as a human-in-the-loop task (the standard provider's ApprovalOperator).

    A candidate blocked only on approvable checks parks the task in "awaiting input" with the drift
    report as its body, and data ops get an email with the link; the answer (or the timeout, which
    takes the default "Reject") is recorded by dtsen.round.record_approval before the operator lets
    publish run (Approve) or skips it (Reject). Any other candidate passes without asking."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from dtsen.config import settings

    class RoundApprovalOperator(ApprovalOperator):
        @scrubbed_failures
        def execute(self, context):
            from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

            from dtsen.round import ask_for_approval

            ctx = round_context(context)
            if ctx.dry_run:
                raise AirflowSkipException("dry run: nothing to approve (the candidate was rolled back)")
            ui = airflow_link(  # the task's "Required Actions" page
                "dags", self.dag_id, "runs", context["run_id"], "tasks", self.task_id, "required_actions"
            )
            try:
                waiting = ask_for_approval(ctx, ui, airflow_link("dtsen", "versions") + "/{version}")
            except DataError as exc:
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            if waiting is None:
                _step_line(ctx, step.name, 0.0, "nothing to ask")
                return {"round_id": ctx.round_id, "asked": False}
            # only they may answer: Airflow's HITL API refuses (403) anyone else; never empty here, since
            # an empty list would let every user allowed to edit the DAG's HITL details answer
            self.assigned_users = [{"id": user, "name": user} for user in ctx.settings.approvers]
            self.subject = waiting.subject
            self.body = waiting.markdown(airflow_link("dtsen", "versions", str(waiting.version)))
            return super().execute(context)

        @scrubbed_failures
        def execute_complete(self, context, event):
            from airflow.sdk.exceptions import AirflowFailException

            from dtsen.round import record_approval

            if "error" not in event:
                user = event.get("responded_by_user") or {}
                user = user if isinstance(user, dict) else {}
                ctx = round_context(context)
                decision = record_approval(
                    ctx,
                    approved=list(event.get("chosen_options") or []) == [self.APPROVE]
                    and not event.get("timedout"),
                    decided_by=user.get("name") or user.get("id"),
                    responder_id=user.get("id"),
                    reason=(event.get("params_input") or {}).get("reason"),
                    timed_out=bool(event.get("timedout")),
                )
                if decision["decision"] == "REFUSED":  # not an approval: publish must not run
                    raise AirflowFailException(
                        f"the answer on version {decision['version']} is not an approval: "
                        f"{decision['refused_because']} (recorded as REFUSED; the candidate stays blocked). "
                        "Clear this task to ask again, or `dtsen approve`."
                    )
                _step_line(ctx, step.name, 0.0, f"answered: {decision['decision']}")
            return super().execute_complete(context, event)

    hours = settings().approval_timeout_hours
    return RoundApprovalOperator(
        task_id=step.name,
        doc_md=step.doc,
        subject="Publish the round's candidate despite its audit?",  # replaced by the candidate's own
        defaults="Reject",  # no answer in time keeps the current version current
        response_timeout=dt.timedelta(hours=hours),
        params=_reason_form(
            "Required to approve: an Approve without a reason is refused and publishes nothing."
        ),
    )


EXTRACT_OPTIONS = {"Apply the extract": "APPLY", "Keep the current reference": "KEEP_REFERENCE"}


def extract_review_task(step):
    """The round's extract_review step as a human-in-the-loop task (the standard provider's HITLOperator).

    A round whose Dukcapil extract open_round held parks the task in "awaiting input" with what the
    plausibility check found as its body, assigned to DTSEN_APPROVERS, and data ops get an email with
    the link. The answer is recorded by dtsen.round.record_extract_decision; then the step attaches the
    snapshot (applied, or the reference kept) and the round goes on. No answer in time fails the task
    (recorded as TIMED_OUT): the round stays stopped until the task is cleared. Any other round passes."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    from dtsen.config import settings

    class ExtractReviewOperator(HITLOperator):
        @scrubbed_failures
        def execute(self, context):
            from airflow.sdk.exceptions import AirflowFailException

            from dtsen.round import ask_about_extract

            ctx = round_context(context)
            ui = airflow_link(
                "dags", self.dag_id, "runs", context["run_id"], "tasks", self.task_id, "required_actions"
            )
            try:
                review = ask_about_extract(ctx, ui)
            except DataError as exc:
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            if review is None:  # nothing held (or decided already, e.g. with dtsen decide-extract)
                return run_step(step, ctx)
            self.assigned_users = [{"id": user, "name": user} for user in ctx.settings.approvers]
            self.subject = review.subject
            self.body = review.markdown()
            return super().execute(context)

        @scrubbed_failures
        def execute_complete(self, context, event):
            from airflow.sdk.exceptions import AirflowFailException

            from dtsen.round import record_extract_decision

            ctx = round_context(context)
            timed_out = "error" in event and event.get("error_type") == "timeout"
            if "error" in event and not timed_out:
                return super().execute_complete(context, event)  # raises the provider's error
            user = event.get("responded_by_user") or {}
            user = user if isinstance(user, dict) else {}
            chosen = list(event.get("chosen_options") or [])
            decision = record_extract_decision(
                ctx,
                decision=EXTRACT_OPTIONS.get(chosen[0]) if len(chosen) == 1 else None,
                decided_by=user.get("name") or user.get("id"),
                responder_id=user.get("id"),
                reason=(event.get("params_input") or {}).get("reason"),
                timed_out=timed_out,
            )
            if decision["decision"] in ("REFUSED", "TIMED_OUT"):
                why = decision.get("refused_because") or "no answer came in time"
                raise AirflowFailException(
                    f"the extract stays held: {why} (recorded as {decision['decision']}). Clear this task to "
                    "ask again, or `dtsen decide-extract`."
                )
            return run_step(step, ctx)

    return ExtractReviewOperator(
        task_id=step.name,
        doc_md=step.doc,
        subject="Apply the held Dukcapil extract?",  # replaced by the extract's own
        options=list(EXTRACT_OPTIONS),
        # no defaults: no answer in time decides nothing (the round stays stopped)
        response_timeout=dt.timedelta(hours=settings().approval_timeout_hours),
        params=_reason_form("Required: an answer without a reason is refused and the extract stays held."),
    )


def notify_task(step):
    """dtsen_notify_programs' one task: the version from the form, else from the asset event."""
    from airflow.sdk import get_current_context, task

    from dtsen.round import RoundContext

    def run():
        context = get_current_context()
        version = context["params"].get("version")
        if version is None:
            events = [e for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
            if events:
                version = events[-1].extra.get("version")
        return run_step(
            step,
            lambda: RoundContext.create(
                "", version=int(version) if version is not None else None, send=send_email
            ),
        )

    run.__name__ = step.name
    return task(task_id=step.name, doc_md=step.doc)(run)


def send_email(email: Email, conn_id: str = SMTP_CONN_ID) -> None:
    """Send through the SMTP provider's hook and the `dtsen_smtp` Airflow connection."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    from dtsen.notify.subscribers import load_subscribers

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(
            to=list(email.to),
            subject=email.subject,
            html_content=f"<pre>{html.escape(email.body)}</pre>",
            from_email=load_subscribers().from_email,
            custom_headers=email.headers() or None,
        )


def notify_data_ops_of_failure(context: dict) -> None:
    """on_failure_callback: tell data ops which task failed (the error text is redacted)."""
    from dtsen.notify.subscribers import load_subscribers

    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "?")
    email = task_failure_email(
        load_subscribers().data_ops,
        dag_id,
        getattr(ti, "task_id", "?"),
        str(context.get("run_id", "?")),
        int(getattr(ti, "try_number", 0) or 0),
        context.get("exception"),
        getattr(ti, "log_url", None),
    )
    try:
        send_email(email)
    except Exception:  # noqa: BLE001 (a failing alert must not hide the original failure)
        log.exception("could not email data ops about the failure of %s", dag_id)


def default_args() -> dict:
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=20),
        "on_failure_callback": notify_data_ops_of_failure,
    }


# -- dtsen_ranking_model: fit a model from the BPS measurements, and a person's decision on it -------


def model_fit_task():
    """The fit task: a new model from the measurements, its card written (dtsen.model.cycle.fit_model);
    returns its number and counts (no personal data). Bad input or configuration fails it at once."""
    from airflow.sdk import get_current_context, task

    from dtsen.model import cycle

    @task(task_id="fit", doc_md=cycle.FIT_DOC)
    def fit():
        from airflow.sdk.exceptions import AirflowFailException

        context = get_current_context()
        params = context["params"]
        try:
            return cycle.fit_model(
                months=params.get("months"),
                folds=params.get("folds"),
                regions=params.get("regions"),
                by=f"airflow:{context['run_id']}",
            )
        except DataError as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {scrubbed(exc)}") from exc

    return fit


def model_adoption_task():
    """The decision on the fitted model as a human-in-the-loop task (ApprovalOperator): its card is the
    body, only DTSEN_APPROVERS may answer, a reason is required to adopt, and no answer in time keeps
    the model in use (recorded as TIMED_OUT). Every answer is recorded by dtsen.model.cycle."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from dtsen.config import settings
    from dtsen.model import cycle

    class ModelAdoptionOperator(ApprovalOperator):
        @scrubbed_failures
        def execute(self, context):
            from airflow.sdk.exceptions import AirflowFailException

            fitted = context["ti"].xcom_pull(task_ids="fit") or {}
            number = int(fitted["model_version"])
            approvers = settings().approvers
            if not approvers:
                raise AirflowFailException(
                    f"model {number} is fitted, but DTSEN_APPROVERS names no one who may adopt it: set it and "
                    f"clear this task, or `dtsen model adopt --version {number} --by NAME --reason TEXT`"
                )
            self.assigned_users = [{"id": user, "name": user} for user in approvers]
            asked = cycle.ask_for_adoption(number, airflow_link("dtsen", "models", str(number)))
            self.subject, self.body = asked["subject"], asked["markdown"]
            return super().execute(context)

        @scrubbed_failures
        def execute_complete(self, context, event):
            from airflow.sdk.exceptions import AirflowFailException

            if "error" not in event:
                number = int(context["ti"].xcom_pull(task_ids="fit")["model_version"])
                user = event.get("responded_by_user") or {}
                user = user if isinstance(user, dict) else {}
                outcome = cycle.record_decision(
                    number,
                    adopt=list(event.get("chosen_options") or []) == [self.APPROVE]
                    and not event.get("timedout"),
                    decided_by=user.get("id") or user.get("name"),
                    reason=(event.get("params_input") or {}).get("reason"),
                    timed_out=bool(event.get("timedout")),
                    dag_run_id=str(context.get("run_id")),
                )
                if outcome["outcome"] == "REFUSED":
                    raise AirflowFailException(
                        f"the answer on model {number} is not an adoption: {outcome['refused_because']} (recorded "
                        "as REFUSED; the model in use stays). Clear this task to ask again, or `dtsen model adopt`."
                    )
            return super().execute_complete(context, event)

    return ModelAdoptionOperator(
        task_id="adopt",
        doc_md=cycle.ADOPT_DOC,
        subject="Rank the next candidates with the fitted model?",  # replaced by the model's own
        defaults="Reject",  # no answer in time keeps the model in use
        response_timeout=dt.timedelta(hours=settings().approval_timeout_hours),
        params=_reason_form("Required to adopt: an Approve without a reason is refused and changes nothing."),
    )
