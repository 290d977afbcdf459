"""One DTSEN update round: an ordered list of steps, the runbook of the round.

The Airflow DAG maps one task per step (the per-submission step once per submission), and
`dtsen run-round`, the main job, the benchmarks and the tests run the same list with `run_round`.
Each step is `step(ctx) -> summary`:
- it opens its own warehouse connection and owns its transaction: nothing below it commits or rolls
  back (the one exception, recording each notification before it is sent, is in dtsen.notify.deliver);
- it is idempotent, keyed by round and submission: rerunning it, or a retried task, changes nothing
  that is already done;
- its summary is small and JSON-able (ids and counts, never rows or personal data: it goes to XCom);
- it raises DataError for bad input or configuration (never retried; the message says what to fix),
  and StepSkipped when there is nothing for it to do (Airflow shows the task skipped). Anything else
  is retried.

A dry run leaves the registry exactly as it was: `merge` does nothing, and `rank_and_audit` rehearses
the merge, builds and audits the candidate in one transaction that it rolls back (the audit runs
inside it), so data ops see what the round would change and how the audit would judge it. Nothing is
published and no region is emailed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from dtsen.config import Settings, settings
from dtsen.errors import DataError

log = logging.getLogger(__name__)


class StepSkipped(Exception):
    """Nothing for this step to do in this run (a dry run, a blocked candidate); not an error."""


@dataclass(frozen=True)
class RoundContext:
    """What every step of one run is told. Built from the trigger form (Airflow) or the command line."""

    round_id: str
    settings: Settings
    dry_run: bool = False
    approve_drift_reason: str | None = None  # publish a candidate blocked only by drift, recording why
    approved_by: str | None = None
    dag_run_id: str | None = None  # the Airflow run, recorded with an approval decision
    approval_in_airflow: bool = False  # an approvable block is put to a person by the approval task
    quality_gate_threshold: float | None = None  # None: the setting
    send: Callable | None = field(default=None, compare=False)  # how emails leave; None: the settings' sender
    submission: dict | None = None  # {"source", "submission_id"}: the per-submission step's one
    version: int | None = None  # notify_programs: the version to announce (None: the current one)

    @classmethod
    def create(
        cls,
        round_id: str,
        *,
        landing_root: Path | str | None = None,
        publish_root: Path | str | None = None,
        raw_root: Path | str | None = None,
        **options,
    ) -> RoundContext:
        cfg = settings()
        paths = {
            name: Path(value).expanduser().resolve()
            for name, value in (
                ("landing_root", landing_root),
                ("publish_root", publish_root),
                ("raw_root", raw_root),
            )
            if value
        }
        if options.get("approve_drift_reason") is not None:
            if not str(options["approve_drift_reason"]).strip():
                raise DataError("approving drift needs a reason (it is recorded with the version)")
            if not str(options.get("approved_by") or "").strip():  # never a stand-in name: who it was
                raise DataError("approving drift needs who approves it (--by; recorded with the version)")
        return cls(round_id, replace(cfg, **paths), **options)

    @property
    def threshold(self) -> float:
        return (
            self.settings.quality_gate_threshold
            if self.quality_gate_threshold is None
            else self.quality_gate_threshold
        )

    def sender(self) -> Callable:
        if self.send is not None:
            return self.send
        from dtsen.notify.senders import default_sender

        return default_sender(self.settings)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[RoundContext], dict]
    doc: str  # for data ops: what it does, and what to do when it fails (the task's doc_md)
    per_submission: bool = False
    publishes: bool = False  # emits the dtsen://versions asset when it publishes
    asks_approval: bool = False  # in Airflow, a human-in-the-loop task that waits for a person's decision
    fans_out: str | None = None  # the summary's list the next (per-submission) step runs once per item


def _connect():
    from dtsen.warehouse import engine

    return engine.connect()


def _round_seq(conn, round_id: str) -> int:
    found = conn.execute("SELECT round_seq FROM ingest.round WHERE round_id = %s", (round_id,)).fetchone()
    if not found:
        raise DataError(f"round {round_id} is not registered: run its open_round step first")
    return found[0]


# -- the steps ------------------------------------------------------------------------------------


def open_round(ctx: RoundContext) -> dict:
    from dtsen.ingest.opening import open_round as register
    from dtsen.ingest.retention import prune_staging
    from dtsen.validate.round import validate_snapshot
    from dtsen.warehouse.migrate import require_current_schema

    with _connect() as conn, conn.transaction():
        require_current_schema(conn)
        pruned = prune_staging(conn, ctx.settings.staging_keep_rounds)
        opened = register(
            conn, ctx.round_id, landing_root=ctx.settings.landing_root, raw_root=ctx.settings.raw_root
        )
        if opened.snapshot is not None:
            validate_snapshot(conn, opened.snapshot.snapshot_pk)
        status = conn.execute(
            "SELECT status FROM ingest.round WHERE round_seq = %s", (opened.round_seq,)
        ).fetchone()[0]
    if opened.snapshot is not None and opened.snapshot.diff.get("conflicting"):
        _tell_data_ops_of_conflicts(ctx, opened.snapshot)
    return {
        "round_id": ctx.round_id,
        "round_seq": opened.round_seq,
        "round_status": status,
        "dukcapil_snapshot": opened.snapshot.snapshot_date.isoformat() if opened.snapshot else None,
        "dukcapil_snapshot_pk": opened.snapshot.snapshot_pk if opened.snapshot else None,
        "dukcapil_rows": opened.snapshot.rows_received if opened.snapshot else 0,
        "dukcapil_rows_kept": opened.snapshot.rows_kept if opened.snapshot else 0,
        "dukcapil_loaded_now": bool(opened.snapshot and opened.snapshot.loaded_now),
        "dukcapil_conflicting_niks": (opened.snapshot.diff.get("conflicting", 0) if opened.snapshot else 0),
        "dukcapil_held": (
            {"snapshot": opened.held.snapshot_date.isoformat(), "review": opened.held.review_pk}
            if opened.held
            else None
        ),
        "submissions": [{"source": s.source, "submission_id": s.submission_id} for s in opened.submissions],
        "refused_landing_entries": len(opened.refused),
        "staging_dropped": {"rounds": pruned.rounds, "dukcapil_snapshots": pruned.snapshots},
    }


def _tell_data_ops_of_conflicts(ctx: RoundContext, snapshot) -> None:
    from dtsen.notify.deliver import send_once
    from dtsen.notify.messages import extract_conflicts_email
    from dtsen.notify.subscribers import load_subscribers

    with _connect() as conn:
        first_lines = [
            n
            for (n,) in conn.execute(
                "SELECT line_no FROM ref.dukcapil_change WHERE snapshot_pk = %s AND change = 'CONFLICTING' "
                "ORDER BY line_no LIMIT 20",
                (snapshot.snapshot_pk,),
            )
        ]
        email = extract_conflicts_email(
            load_subscribers(ctx.settings.subscribers_path).data_ops,
            snapshot.snapshot_date,
            snapshot.diff["conflicting"],
            snapshot.diff.get("conflicting_lines", 0),
            first_lines,
        )
        send_once(conn, f"dukcapil-snapshot:{snapshot.snapshot_pk}:conflicting", email, ctx.sender())


def extract_review(ctx: RoundContext) -> dict:
    """Outside Airflow nobody waits here: a round whose Dukcapil extract is held stops (a DataError
    saying how to decide) until `dtsen decide-extract`; once decided, the snapshot is attached to the
    round (applied, or the reference kept as it stands). In Airflow the task is a human-in-the-loop
    decision (dtsen.airflow_support.extract_review_task) around ask_about_extract and
    record_extract_decision, then this."""
    from dtsen.ingest.dukcapil import SnapshotHeld
    from dtsen.ingest.dukcapil_review import waiting_for
    from dtsen.ingest.opening import attach_snapshot

    with _connect() as conn, conn.transaction():
        review = waiting_for(conn, ctx.round_id)
        if review is None:
            return {"round_id": ctx.round_id, "held": False}
        if review.status == "WAITING":
            raise DataError(
                f"round {ctx.round_id} stops: the Dukcapil extract of {review.snapshot_date} is held, {review.why}. "
                "Nothing of it was applied. A person decides: `dtsen decide-extract --date "
                f"{review.snapshot_date} --apply` (or `--keep-reference`) `--by NAME --reason TEXT`, then run "
                "the round again"
            )
        attached = attach_snapshot(
            conn,
            ctx.round_id,
            _round_seq(conn, ctx.round_id),
            ctx.settings.landing_root,
            ctx.settings.raw_root,
        )
        if isinstance(attached, SnapshotHeld):  # another extract, delivered since, is held in turn
            raise DataError(
                f"round {ctx.round_id} stops: the Dukcapil extract of {attached.snapshot_date} is held, "
                f"{attached.review.why}. Decide on it as on the previous one"
            )
        if attached is not None:
            from dtsen.validate.round import validate_snapshot

            validate_snapshot(conn, attached.snapshot_pk)
    return {
        "round_id": ctx.round_id,
        "held": True,
        "review": review.review_pk,
        "decision": review.status,
        "dukcapil_snapshot": attached.snapshot_date.isoformat() if attached else None,
    }


def ask_about_extract(ctx: RoundContext, ui_link: str | None = None):
    """The round's held Dukcapil extract as a decision to put to a person (None: nothing to decide),
    and data ops emailed once that it waits, with the link to answer it."""
    from dtsen.ingest.dukcapil_review import waiting_for
    from dtsen.notify.deliver import send_once
    from dtsen.notify.messages import extract_held_email
    from dtsen.notify.subscribers import load_subscribers

    with _connect() as conn:
        review = waiting_for(conn, ctx.round_id)
        conn.commit()
        if review is None or review.status != "WAITING":
            return None
        if not ctx.settings.approvers:
            raise DataError(
                f"the Dukcapil extract of {review.snapshot_date} is held, but DTSEN_APPROVERS is not set: nobody "
                "may decide on it in Airflow. Set DTSEN_APPROVERS and clear this task, or `dtsen decide-extract`"
            )
        email = extract_held_email(
            load_subscribers(ctx.settings.subscribers_path).data_ops, ctx.round_id, review, ui_link
        )
        send_once(conn, f"dukcapil-review:{review.review_pk}:waiting", email, ctx.sender())
    return review


def record_extract_decision(
    ctx: RoundContext,
    *,
    decision: str | None,
    decided_by: str | None,
    reason: str | None,
    timed_out: bool,
    responder_id: str | None = None,
) -> dict:
    """A person's answer on the round's held extract (`decision`: APPLY or KEEP_REFERENCE; None with
    `timed_out`). Counts only from one of DTSEN_APPROVERS, with a reason: any other is kept as REFUSED
    and the extract stays held. Safe to repeat and to race: the first decision stands."""
    from dtsen.ingest.dukcapil_review import decide, waiting_for

    reason = (reason.strip() if isinstance(reason, str) else "") or None
    refused_because = None
    if not timed_out and (responder_id or decided_by or "") not in ctx.settings.approvers:
        refused_because = "the responding user is not one of DTSEN_APPROVERS"
    elif not timed_out and reason is None:
        refused_because = "a decision needs a reason, and none was given"
    outcome = "REFUSED" if refused_because else ("TIMED_OUT" if timed_out else decision)
    with _connect() as conn, conn.transaction():
        review = waiting_for(conn, ctx.round_id)
        if review is None:
            return {"round_id": ctx.round_id, "review": None, "decision": None}
        status, _ = decide(
            conn, review.review_pk, outcome, decided_by, "airflow-ui", reason, ctx.dag_run_id, refused_because
        )
    # decided (by this answer, or already: another answer, dtsen decide-extract): the round goes on;
    # still waiting: this answer was refused or none came in time
    summary = {"round_id": ctx.round_id, "review": review.review_pk, "status": status}
    if status != "WAITING":
        return summary | {"decision": status}
    return summary | {"decision": outcome} | ({"refused_because": refused_because} if refused_because else {})


def _require_extract_decided(conn, round_id: str) -> None:
    from dtsen.ingest.dukcapil_review import waiting_for

    review = waiting_for(conn, round_id)
    if review is not None:
        raise DataError(
            f"round {round_id} waits for a decision on the Dukcapil extract of {review.snapshot_date} "
            "(its extract_review step): nothing is validated against a reference that may be wrong"
        )


def stage_and_validate(ctx: RoundContext) -> dict:
    from dtsen.ingest.opening import ingest_one_submission
    from dtsen.validate.round import validate_submission

    if ctx.submission is None:
        raise DataError("stage_and_validate runs once per submission: none was given")
    source, submission_id = ctx.submission["source"], ctx.submission["submission_id"]
    started = time.perf_counter()
    with _connect() as conn, conn.transaction():
        _require_extract_decided(conn, ctx.round_id)
        outcome = ingest_one_submission(
            conn,
            ctx.round_id,
            source,
            submission_id,
            landing_root=ctx.settings.landing_root,
            raw_root=ctx.settings.raw_root,
        )
        staged = time.perf_counter()
        row_rejections = 0
        if outcome.submission_pk is not None:  # None: refused as a submission (its feedback says why)
            row_rejections = validate_submission(conn, outcome.submission_pk).row_rejections
    validated = time.perf_counter()
    return {
        "submission_pk": outcome.submission_pk,
        "source": source,
        "submission_id": submission_id,
        "status": outcome.status,
        "reason_code": outcome.reason_code,
        "rows_received": {f.file_name: f.rows_received for f in outcome.files},
        "file_codes": {f.file_name: f.code for f in outcome.files if f.code},
        "processed_now": outcome.processed_now,
        "row_rejections": row_rejections,
        "seconds": {"stage": round(staged - started, 3), "validate": round(validated - staged, 3)},
    }


def finish_validation(ctx: RoundContext) -> dict:
    from dtsen.validate.round import finish_validation as finish

    with _connect() as conn, conn.transaction():
        _require_extract_decided(conn, ctx.round_id)
        gate = finish(conn, _round_seq(conn, ctx.round_id), ctx.threshold)
    return {
        "round_id": ctx.round_id,
        "already_validated": gate is None,
        "gate_rejected_submissions": sum(1 for g in gate or [] if not g.passed),
    }


def merge(ctx: RoundContext) -> dict:
    from dtsen.merge import merge_round

    if ctx.dry_run:  # rehearsed (and rolled back) by rank_and_audit
        return {"round_id": ctx.round_id, "dry_run": True, "merged": False}
    with _connect() as conn, conn.transaction():
        summary = merge_round(
            conn, _round_seq(conn, ctx.round_id), connect=_connect, sessions=ctx.settings.write_sessions
        )
    return {
        "round_id": ctx.round_id,
        "already_merged": summary.already_merged,
        "changes": summary.changes,
        "conflict_lost": summary.conflict_lost,
    }


def integrity(ctx: RoundContext) -> dict:
    from dtsen.integrity.config import load_integrity
    from dtsen.integrity.splits import detect_splits

    if ctx.dry_run:  # nothing was merged: no new families to look at
        return {"round_id": ctx.round_id, "dry_run": True, "scored": False}
    thresholds = load_integrity(ctx.settings.integrity_config_path).splits
    with _connect() as conn, conn.transaction():
        round_seq = _round_seq(conn, ctx.round_id)
        report = detect_splits(conn, round_seq, ctx.round_id, thresholds, ctx.settings.publish_root)
    return {
        "round_id": ctx.round_id,
        "scored": report.scored,
        "detected_now": report.detected_now,
        "why_not_scored": report.why,
        "counts": report.counts,  # villages and accounts scored and flagged, families involved
    }


def cases(ctx: RoundContext) -> dict:
    from dtsen.cases.config import load_cases_config
    from dtsen.cases.rounds import run_round_cases
    from dtsen.integrity.config import load_integrity

    if ctx.dry_run:  # nothing was merged: no flags of this round to act on
        return {"round_id": ctx.round_id, "dry_run": True}
    config = load_cases_config(ctx.settings.cases_config_path)
    small = load_integrity(ctx.settings.integrity_config_path).splits.small_family_max_members
    with _connect() as conn, conn.transaction():
        round_seq = _round_seq(conn, ctx.round_id)
        (reference_date,) = conn.execute(
            "SELECT reference_date FROM ingest.round WHERE round_seq = %s", (round_seq,)
        ).fetchone()
        (version,) = conn.execute("SELECT max(version) FROM publish.current_version").fetchone()
        done = run_round_cases(
            conn,
            round_seq,
            config,
            reference_date=reference_date,
            version=version,
            small_family_max_members=small,
        )
    if done["overdue_regions"]:
        _tell_data_ops_of_overdue_cases(ctx, config.overdue_alert_share, done["overdue_regions"])
    return {"round_id": ctx.round_id, **done}


def _tell_data_ops_of_overdue_cases(ctx: RoundContext, share: float, regions: list[dict]) -> None:
    from dtsen.notify.deliver import send_once
    from dtsen.notify.messages import cases_overdue_email
    from dtsen.notify.subscribers import load_subscribers

    email = cases_overdue_email(
        load_subscribers(ctx.settings.subscribers_path).data_ops, ctx.round_id, share, regions
    )
    with _connect() as conn:
        send_once(conn, f"round:{ctx.round_id}:cases-overdue", email, ctx.sender())


def feedback(ctx: RoundContext) -> dict:
    from dtsen.feedback import write_round_feedback

    with _connect() as conn, conn.transaction():
        reports = write_round_feedback(conn, _round_seq(conn, ctx.round_id), ctx.settings.publish_root)
    written = [r for r in reports if not r.already]
    return {
        "round_id": ctx.round_id,
        "submissions_reported": sum(1 for r in written if r.submission_pk is not None),
        "refused_entries_reported": sum(1 for r in written if r.submission_pk is None),
        "rows_listed": sum(r.rejected_rows for r in written),
        "already_reported": len(reports) - len(written),  # written by an earlier run, left as they were
    }


def notify_regions(ctx: RoundContext) -> dict:
    from dtsen.feedback import feedback_dir
    from dtsen.notify.deliver import notify_regions as deliver
    from dtsen.notify.subscribers import load_subscribers

    if ctx.dry_run:
        return {"round_id": ctx.round_id, "dry_run": True, "emails_sent": 0}
    subscribers = load_subscribers(ctx.settings.subscribers_path)
    with _connect() as conn:
        items = [
            {
                "source": source,
                "kode_wilayah": kode,
                "path": str(feedback_dir(ctx.settings.publish_root, ctx.round_id, submission_id)),
            }
            for source, kode, submission_id in conn.execute(
                "SELECT s.source, s.kode_wilayah, s.submission_id FROM ingest.submission s "
                "JOIN ingest.round r USING (round_seq) WHERE r.round_id = %s AND s.status IN ('REJECTED', 'MERGED') "
                "ORDER BY s.submission_pk",
                (ctx.round_id,),
            )
        ]
        sent_before = _delivered_before(conn, f"round:{ctx.round_id}:region:")
        conn.commit()  # reading done: each delivery below is recorded on its own
        return deliver(conn, ctx.round_id, items, subscribers, ctx.sender()) | {"already_sent": sent_before}


def aduan_outcomes(ctx: RoundContext) -> dict:
    from dtsen.cases.outcomes import callback_payload, write_outcomes
    from dtsen.notify.deliver import notify_aduan_channel
    from dtsen.notify.subscribers import load_subscribers

    if ctx.dry_run:  # the cases step did nothing: no outcome to tell
        return {"round_id": ctx.round_id, "dry_run": True}
    subscribers = load_subscribers(ctx.settings.subscribers_path)
    with _connect() as conn, conn.transaction():
        written = write_outcomes(
            conn, _round_seq(conn, ctx.round_id), ctx.round_id, ctx.settings.publish_root
        )
    with _connect() as conn:
        delivered, undelivered = notify_aduan_channel(
            conn, ctx.round_id, callback_payload(written), subscribers
        )
    summary = {
        "round_id": ctx.round_id,
        "rows": written["rows"],
        "status": written["status"],
        "regions": written["regions"],
        "done_before": written["done_before"],
        "callbacks_delivered": delivered,
    }
    return summary | ({"callbacks_undelivered": undelivered} if undelivered else {})


def _delivered_before(conn, topic_prefix: str) -> int:
    """Notices of these topics an earlier run delivered (a rerun sends none of them again)."""
    return conn.execute(
        "SELECT count(*) FROM publish.notification WHERE starts_with(topic, %s) AND status <> 'PENDING'",
        (topic_prefix,),
    ).fetchone()[0]


def _rules(conn, ctx: RoundContext) -> tuple:
    """The ranking model (the adopted one, issue 25), programs and integrity rules a candidate uses."""
    from dtsen.integrity.config import load_integrity
    from dtsen.model.store import active_model
    from dtsen.programs import load_programs

    return (
        active_model(conn, ctx.settings.ranking_model_path),
        load_programs(ctx.settings.programs_path),
        load_integrity(ctx.settings.integrity_config_path),
    )


def _audit(conn, ctx: RoundContext, version: int, in_sessions: bool):
    # A committed candidate's members and families batches are computed by the write sessions, each
    # a share; a dry run's candidate is seen by its own transaction only, so it audits in one.
    from dtsen.publish.audit import AuditConfig, audit_version

    config = AuditConfig.load(ctx.settings.audit_config_path)
    if not in_sessions:
        return audit_version(conn, version, config)
    return audit_version(conn, version, config, connect=_connect, sessions=ctx.settings.write_sessions)


def _audit_summary(ctx: RoundContext, built, status: str, audit, seconds: dict) -> dict:
    return {
        "round_id": ctx.round_id,
        "version": built.version,
        "status": status,
        "built_now": built.created_now,
        "build": built.build,  # whole or incremental, and rows opened and closed per table
        "seconds": seconds,
        "audit_passed": audit.success,
        "failed_checks": [c["rule"] for c in audit.checks if not c["success"]],
        "drifted_regencies": sorted({d["kode_kabupaten"] for d in audit.drift_flagged}),
        "report": audit.report(),  # counts and regency codes only
    }


def rank_and_audit(ctx: RoundContext) -> dict:
    from dtsen.merge import merge_round
    from dtsen.publish.audit import APPROVABLE_RULES, DRIFT_RULES, approve_version
    from dtsen.publish.candidate import build_candidate
    from dtsen.publish.in_sessions import build_candidate_in_sessions

    if ctx.dry_run:
        with _connect() as conn, conn.transaction(force_rollback=True):  # the registry stays as it was
            merged = merge_round(conn, _round_seq(conn, ctx.round_id))
            started = time.perf_counter()
            built = build_candidate(conn, ctx.round_id, *_rules(conn, ctx))
            built_at = time.perf_counter()
            audit = _audit(conn, ctx, built.version, in_sessions=False)
            seconds = {
                "candidate": round(built_at - started, 3),
                "audit": round(time.perf_counter() - built_at, 3),
            }
        summary = _audit_summary(ctx, built, audit.status, audit, seconds)
        return summary | {
            "dry_run": True,
            "version": None,
            "rolled_back_version": built.version,
            "changes": merged.changes,
        }
    started = time.perf_counter()
    # its own transactions: the spans written by several sessions, decided by the version row; the
    # rules read under the build's lock, so a second run at once waits for the whole build
    built = build_candidate_in_sessions(
        _connect, ctx.round_id, lambda c: _rules(c, ctx), sessions=ctx.settings.write_sessions
    )
    built_at = time.perf_counter()
    with _connect() as conn, conn.transaction():
        audit = _audit(conn, ctx, built.version, in_sessions=True)
        seconds = {
            "candidate": round(built_at - started, 3),
            "audit": round(time.perf_counter() - built_at, 3),
        }
        status = audit.status
        # the trigger form approves drift only (an admin may also approve desil shares: dtsen approve)
        only_drift = all(c["success"] or c["rule"] in DRIFT_RULES for c in audit.checks)
        if status == "BLOCKED" and ctx.approve_drift_reason and only_drift:
            approve_version(
                conn,
                built.version,
                ctx.approved_by or "",  # RoundContext.create refuses approve_drift without who
                ctx.approve_drift_reason,
                channel="airflow-trigger" if ctx.approval_in_airflow else "cli",
                dag_run_id=ctx.dag_run_id,
            )
            status = "APPROVED"
    summary = _audit_summary(ctx, built, status, audit, seconds)
    approvable = all(c["success"] or c["rule"] in APPROVABLE_RULES for c in audit.checks)
    if status == "BLOCKED" and not (ctx.approval_in_airflow and approvable):
        _tell_data_ops_of_the_block(ctx, summary)  # else the approval task asks them, with the report
    return summary


def _tell_data_ops_of_the_block(ctx: RoundContext, summary: dict) -> None:
    from dtsen.notify.deliver import send_once
    from dtsen.notify.messages import audit_blocked_email
    from dtsen.notify.subscribers import load_subscribers

    email = audit_blocked_email(
        load_subscribers(ctx.settings.subscribers_path).data_ops,
        ctx.round_id,
        summary["version"],
        summary["report"],
    )
    with _connect() as conn:
        send_once(conn, f"version:{summary['version']}:blocked", email, ctx.sender())


def approval(ctx: RoundContext) -> dict:
    """Outside Airflow nobody waits here: a candidate blocked on approvable checks stays blocked until
    `dtsen approve` (rank_and_audit has emailed data ops). In Airflow the task is a human-in-the-loop
    approval (dtsen.airflow_support.approval_task) around ask_for_approval and record_approval."""
    from dtsen.publish.approval import candidate_of_round, pending_approval

    if ctx.dry_run:
        raise StepSkipped("dry run: nothing to approve (the candidate was rolled back)")
    with _connect() as conn:
        found = candidate_of_round(conn, ctx.round_id)
        waiting = pending_approval(conn, ctx.round_id)
    return {
        "round_id": ctx.round_id,
        "version": found[0] if found else None,
        "status": found[1] if found else None,
        "asked": False,
        "approvable": waiting is not None,
    }


def ask_for_approval(ctx: RoundContext, ui_link: str | None = None, cockpit_link: str | None = None):
    """The round's candidate as a decision to put to a person (None: nothing to decide), and data ops
    emailed once that it waits, with the link to answer it (`cockpit_link` may hold `{version}`)."""
    from dtsen.notify.deliver import send_once
    from dtsen.notify.messages import approval_waiting_email
    from dtsen.notify.subscribers import load_subscribers
    from dtsen.publish.approval import pending_approval

    with _connect() as conn:
        waiting = pending_approval(conn, ctx.round_id)
        conn.commit()
        if waiting is not None and not ctx.settings.approvers:  # nobody to ask: say so, ask no one
            raise DataError(
                f"version {waiting.version} waits for approval, but DTSEN_APPROVERS is not set: nobody may "
                "approve it in Airflow. Set DTSEN_APPROVERS (Airflow user ids) and clear this task, or "
                f"`dtsen approve --version {waiting.version} --by NAME --reason TEXT`, then publish"
            )
        if waiting is not None:
            email = approval_waiting_email(
                load_subscribers(ctx.settings.subscribers_path).data_ops,
                waiting,
                ui_link,
                cockpit_link.format(version=waiting.version) if cockpit_link else None,
            )
            send_once(conn, f"version:{waiting.version}:approval-waiting", email, ctx.sender())
    return waiting


def record_approval(
    ctx: RoundContext,
    *,
    approved: bool,
    decided_by: str | None,
    reason: str | None,
    timed_out: bool,
    responder_id: str | None = None,
) -> dict:
    """A person's answer (or the timeout) on the round's blocked candidate: approve it (the person is
    recorded as its approver) or leave it blocked; either way the decision is kept. An Approve counts
    only from one of DTSEN_APPROVERS (by Airflow user id, `responder_id`, else `decided_by`) and with a
    reason: any other is kept as REFUSED, with why, and the candidate stays blocked (Airflow's API
    takes any answer an authorised user sends, whatever the form asked for). Safe to repeat: an
    approval happens once (the candidate is then no longer BLOCKED), and the same other outcome of the
    same run is recorded once; a later different answer (the task cleared and asked again) is a new
    decision."""
    from dtsen.publish.approval import candidate_of_round
    from dtsen.publish.audit import approve_version, record_decision

    reason = (reason.strip() if isinstance(reason, str) else "") or None  # the API takes any JSON value
    refused_because = None
    if approved and (responder_id or decided_by or "") not in ctx.settings.approvers:
        refused_because = "the responding user is not one of DTSEN_APPROVERS"
    elif approved and reason is None:
        refused_because = "an Approve needs a reason, and none was given"
    outcome = (
        "REFUSED"
        if refused_because
        else ("APPROVED" if approved else ("TIMED_OUT" if timed_out else "REJECTED"))
    )
    with _connect() as conn, conn.transaction():
        # locked: a concurrent answer (another recorder, `dtsen approve`) waits, then finds it decided
        found = candidate_of_round(conn, ctx.round_id, lock=True)
        if found is None or found[1] != "BLOCKED":  # decided already (this answer, `dtsen approve`, discard)
            return {"round_id": ctx.round_id, "version": found[0] if found else None, "decision": None}
        version = found[0]
        if outcome == "APPROVED":
            approve_version(conn, version, decided_by or "", reason or "", "airflow-ui", ctx.dag_run_id)
        else:
            last = conn.execute(
                "SELECT outcome, decided_by FROM publish.approval_decision WHERE version = %s "
                "AND channel = 'airflow-ui' AND dag_run_id IS NOT DISTINCT FROM %s ORDER BY decision_pk DESC LIMIT 1",
                (version, ctx.dag_run_id),
            ).fetchone()
            if last != (outcome, decided_by):
                record_decision(
                    conn, version, outcome, decided_by, "airflow-ui", reason, ctx.dag_run_id, refused_because
                )
    summary = {"round_id": ctx.round_id, "version": version, "decision": outcome}
    return summary | ({"refused_because": refused_because} if refused_because else {})


def publish(ctx: RoundContext) -> dict:
    from dtsen.integrity.splits import write_implausible_list
    from dtsen.publish.version import PUBLISHABLE, RELEASED, publish_version

    if ctx.dry_run:
        raise StepSkipped("dry run: nothing is published (the registry is unchanged)")
    with _connect() as conn, conn.transaction():
        found = conn.execute(
            "SELECT v.version, v.status FROM publish.version v JOIN ingest.round r ON r.round_seq = v.round_seq "
            "WHERE r.round_id = %s AND v.status <> 'DISCARDED'",
            (ctx.round_id,),
        ).fetchone()
        if found is None:
            raise DataError(f"round {ctx.round_id} has no candidate version: run rank_and_audit first")
        version, status = found
        if status not in PUBLISHABLE + RELEASED:
            raise StepSkipped(
                f"version {version} is {status}: not published; the current version stays current "
                f"(review the audit, then `dtsen approve --version {version}` or trigger again with approve_drift)"
            )
        published = publish_version(conn, version, ctx.settings.publish_root)
        # Kemensos's ground-check list of the version's implausible recipients (same rows each time)
        write_implausible_list(conn, version, ctx.round_id, ctx.settings.publish_root)
    return {
        "round_id": ctx.round_id,
        "version": version,
        "path": str(published.path),
        "published_now": published.published_now,
        "file_rows": published.file_rows,
        "file_seconds": {name: round(t, 3) for name, t in published.file_seconds.items()},
    }


def notify_programs(ctx: RoundContext) -> dict:
    from dtsen.notify.deliver import notify_programs as deliver
    from dtsen.notify.deliver import version_to_announce
    from dtsen.notify.subscribers import load_subscribers

    with _connect() as conn:
        version = version_to_announce(conn, ctx.version, ctx.settings.publish_root)
        if version is None:
            raise StepSkipped("no version is published yet: nothing to announce")
        sent_before = _delivered_before(conn, f"version:{version}:program:")
        conn.commit()  # reading done: each delivery below is recorded on its own
        summary = deliver(conn, int(version), load_subscribers(ctx.settings.subscribers_path), ctx.sender())
        return summary | {"already_sent": sent_before}


_FAILS = "**If it fails**:"
STEPS: tuple[Step, ...] = (
    Step(
        "open_round",
        open_round,
        "Check the warehouse's schema is current, drop staging copies older than the retention setting "
        "(raw files stay), register the round (rounds register one at a time, in order), refuse hostile "
        "landing entries (each gets feedback), compare the Dukcapil snapshot with the reference and check "
        f"what changed, list the submissions. {_FAILS} a missing round folder, a bad round id, an earlier "
        "round not yet merged or a schema behind are data errors: the log says what to do.",
        fans_out="submissions",
    ),
    Step(
        "extract_review",
        extract_review,
        "A Dukcapil extract that would remove more than DTSEN_DUKCAPIL_MAX_REMOVED_SHARE of the reference's "
        "NIKs (or of one regency's), or whose last line is cut off, is held by open_round: nothing of it is "
        "applied, and this task puts it to one of DTSEN_APPROVERS with what was found (counts and regency "
        "codes); data ops are emailed the link. **Apply the extract** applies it; **Keep the current "
        "reference** sets it aside and the round goes on with the reference as it stands. A reason is "
        "required; every answer is recorded. Any other round passes straight through. "
        f"{_FAILS} no answer in time (the round stays stopped: clear the task to ask again), an answer "
        "refused (no reason, or not an approver), or DTSEN_APPROVERS unset.",
        asks_approval=True,
    ),
    Step(
        "stage_and_validate",
        stage_and_validate,
        "Check one submission's manifest, keep its files in the raw store, stage them (COPY) and "
        "validate them (Great Expectations), in one transaction. A bad submission ends REJECTED with a "
        f"reason code and never fails its neighbours. {_FAILS} a database or disk problem: clear the task "
        "once fixed (it resumes where it stopped).",
        per_submission=True,
    ),
    Step(
        "finish_validation",
        finish_validation,
        "Cross-row and cross-source rules, the quality gate and NIK-repair suggestions, then the round is "
        "VALIDATED. Waits for every submission: a submission task that failed must be cleared and succeed "
        f"first, or its rows would be neither merged nor rejected. {_FAILS} see the log; rerun after fixing.",
    ),
    Step(
        "merge",
        merge,
        "Merge the round into the registry in one transaction (conflicts, moves, deaths, history). Does "
        f"nothing on a dry run. {_FAILS} an invariant violation changed nothing: the log names the "
        "invariant; fix the input (or the rule) and clear the task.",
    ),
    Step(
        "integrity",
        integrity,
        "Look for household splitting: count the families the round created per village and per "
        "submitting account (split out of an existing family, or of one or two members) and score them "
        "against the regency's villages (the round's accounts) and their own past rounds. Flags are "
        "warnings: the region's feedback asks for field verification, Kemensos gets pemisahan_kk.csv "
        "(keys masked), the audit and the manifest show the counts. Nothing is excluded. "
        f"{_FAILS} a configuration error in config/integrity.json is named in the log.",
    ),
    Step(
        "cases",
        cases,
        "Open a verification case (a family for a region's field team to visit) for every family an "
        "origin in config/cases.json flags: the published version's implausible recipients, this "
        "round's split-surge flags, records neither updated nor verified for a number of rounds. A family "
        "has one live case with every origin's reason; a flag a closed case settled is not raised again. "
        "Cases due before the round's reference date without a field result expire. Nothing is excluded: a "
        f"field result does that. {_FAILS} a configuration error in config/cases.json is named in the log.",
    ),
    Step(
        "feedback",
        feedback,
        "Write ringkasan.json and ditolak.csv (keys masked, Indonesian) for every submission whose outcome "
        f"is final, and for every refused landing entry. {_FAILS} usually a full disk: the log names the path.",
    ),
    Step(
        "notify_regions",
        notify_regions,
        "Email each region the summary of its submissions and where its ditolak.csv is. Nothing on a "
        "dry run. A retried task sends only what did not go out; an email whose sending was cut off (the "
        "task died after the relay took it) is sent again, marked [kirim ulang], with the same Message-ID. "
        f"{_FAILS} the mail relay refused; "
        "clear the task once it is back.",
    ),
    Step(
        "aduan_outcomes",
        aduan_outcomes,
        "Write aduan/<round>/hasil_aduan.csv (and one file per region) telling the channel that collects "
        "households' objections and proposals what became of each (its case, its outcome; keys masked), "
        "then call back the channel's webhooks (signed). Nothing on a dry run. A callback not delivered "
        "does not fail the task: it is named in the summary and a rerun posts it again. "
        f"{_FAILS} usually a full disk: the log names the path.",
    ),
    Step(
        "rank_and_audit",
        rank_and_audit,
        "Rank every family, select program recipients and audit the candidate version with Great "
        "Expectations. A failed audit blocks publication (the current version stays current): a block a "
        "person may approve (drift, desil shares) is put to data ops by the approval task; any other "
        "block emails them here. approve_drift with a reason on the trigger form approves drift (a run "
        "triggered by one of DTSEN_APPROVERS only). On a dry "
        f"run the merge, ranking and audit are rehearsed and rolled back. {_FAILS} a model or program "
        "configuration error is named in the log.",
    ),
    Step(
        "approval",
        approval,
        "A candidate blocked only on checks an admin may accept (drift, desil shares) waits here for one "
        "of DTSEN_APPROVERS: the drift report is the question, data ops are emailed the link, Approve with "
        "a reason publishes it (the responding user is its approver), Reject or no answer in time keeps "
        "the current version current; every outcome is recorded. Anything else passes straight through (a "
        f"broken invariant never reaches this task). {_FAILS} DTSEN_APPROVERS is not set, or an Approve came "
        "without a reason (recorded as REFUSED; nothing was published), or the warehouse or the mail relay "
        "was unreachable: fix that, then clear it to ask again.",
        asks_approval=True,
    ),
    Step(
        "publish",
        publish,
        "Write versions/<N>/ atomically (files, then manifest, then rename) and record it; emits the "
        "dtsen://versions asset. Skipped on a dry run or while the candidate is blocked. "
        f"{_FAILS} usually disk space; a half-written version is removed by the next attempt.",
        publishes=True,
    ),
)
STEP: dict[str, Step] = {s.name: s for s in STEPS}
NOTIFY_PROGRAMS = Step(
    "notify_programs",
    notify_programs,
    "Email and webhook every program owner of the version and call back every registry API subscriber of "
    "its programs. A webhook or callback that is refused by the callback rules (see DTSEN_CALLBACK_ALLOWLIST), "
    "down, or slower than DTSEN_WEBHOOK_TIMEOUT_SECONDS does not fail the task: the summary lists it as not "
    "delivered and `dtsen notify-retry` (or clearing this task) sends it later. "
    f"{_FAILS} an email could not be sent, or registry API subscriptions exist and DTSEN_CALLBACK_SIGNING_KEY "
    "is not set where the task runs; what was delivered is recorded and is not sent again when the task is "
    "cleared.",
)


def run_round(
    ctx: RoundContext,
    *,
    until: str | None = None,
    only: Iterable[str] | None = None,
    seconds: dict[str, float] | None = None,
) -> dict:
    """Run the steps in order (up to and including `until`, or just those in `only`); each summary by
    step name, the per-submission step's as a list. A skipped step's summary is {"skipped": why}.
    `seconds`, if given, receives each step's wall-clock time (the benchmarks' stages)."""
    if until is not None and until not in STEP:
        raise DataError(f"no step {until!r}: the steps are {', '.join(STEP)}")
    from dtsen.progress import Progress

    wanted = set(only) if only is not None else None
    names = [step.name for step in STEPS]
    planned = [n for n in names[: names.index(until) + 1 if until else None] if wanted is None or n in wanted]
    progress = Progress(f"round {ctx.round_id}", planned)  # a line per step, in the CLI's log
    summaries: dict = {}
    for step in STEPS:
        if step.name in planned:
            started = time.perf_counter()
            summaries[step.name] = _run(step, ctx, summaries)
            took = time.perf_counter() - started
            if seconds is not None:
                seconds[step.name] = took
            progress.finished(step.name, None, took)
        if step.name == until:
            break
    return summaries


def _run(step: Step, ctx: RoundContext, earlier: dict) -> dict | list:
    if step.per_submission:
        opened = earlier.get("open_round") or open_round(ctx)
        return [_run_one(step, replace(ctx, submission=s)) for s in opened[STEP["open_round"].fans_out]]
    return _run_one(step, ctx)


def _run_one(step: Step, ctx: RoundContext) -> dict:
    try:
        summary = step.run(ctx)
    except StepSkipped as skipped:
        summary = {"skipped": str(skipped)}
    if ctx.submission:  # the round's own line per step is run_round's progress
        log.info("round %s: %s of %s done", ctx.round_id, step.name, ctx.submission["submission_id"])
    return summary
