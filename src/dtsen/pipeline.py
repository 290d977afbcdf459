"""The stages of a round as plain functions: what the CLI, the demo and the Airflow tasks call.

Each returns small summaries (ids, counts, codes), never rows or personal data.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from dtsen.config import settings
from dtsen.feedback import write_round_feedback
from dtsen.ingest.round import ingest_round
from dtsen.merge import MergeSummary, merge_round
from dtsen.programs import load_programs
from dtsen.publish.audit import AuditConfig, AuditOutcome, audit_version
from dtsen.publish.candidate import CandidateSummary, build_candidate
from dtsen.publish.version import PUBLISHABLE, RELEASED, PublishSummary, publish_version
from dtsen.rank.model import load_model
from dtsen.validate.round import validate_round
from dtsen.warehouse import engine

log = logging.getLogger(__name__)


@dataclass
class SubmissionSummary:
    submission_pk: int
    source: str
    submission_id: str
    status: str
    reason_code: str | None
    received: dict[str, int]
    rejected_rows: int
    reasons: dict[str, int]
    feedback_path: str | None  # None until the outcome is final (refused, or merged)


@dataclass
class RefusedSummary:
    entry: str  # printable name of the landing entry
    detail: str  # why, for operators
    feedback_path: str


@dataclass
class ValidationSummary:
    round_id: str
    round_seq: int
    dukcapil_snapshot: str | None
    submissions: list[SubmissionSummary] = field(default_factory=list)
    refused: list[RefusedSummary] = field(default_factory=list)
    dukcapil_rows_loaded: int = 0  # 0 when the snapshot was already loaded by an earlier run


def refused_entries(conn, round_seq: int, publish_root: Path) -> list[RefusedSummary]:
    round_id = conn.execute(
        "SELECT round_id FROM ingest.round WHERE round_seq = %s", (round_seq,)
    ).fetchone()[0]
    return [
        RefusedSummary(entry, detail, str(publish_root / "feedback" / round_id / folder))
        for entry, detail, folder in conn.execute(
            "SELECT entry, detail, feedback_dir FROM ingest.refused_entry WHERE round_seq = %s ORDER BY refused_pk",
            (round_seq,),
        )
    ]


def stage_and_validate(
    round_id: str,
    *,
    landing_root: Path | None = None,
    publish_root: Path | None = None,
    threshold: float | None = None,
) -> ValidationSummary:
    """Discover, stage and validate a round; write the feedback of what is final already (refusals)."""
    cfg = settings()
    publish = publish_root or cfg.publish_root
    with engine.connect() as conn:
        ingested = ingest_round(conn, round_id, landing_root=landing_root)
        conn.commit()
        validate_round(conn, ingested.round_seq, threshold=threshold)
        summary = ValidationSummary(
            round_id,
            ingested.round_seq,
            ingested.snapshot.snapshot_date.isoformat() if ingested.snapshot else None,
            dukcapil_rows_loaded=ingested.snapshot.rows_received
            if ingested.snapshot and ingested.snapshot.loaded_now
            else 0,
        )
        reports = {r.submission_pk: r for r in write_round_feedback(conn, ingested.round_seq, publish)}
        for sub in ingested.submissions:
            if sub.submission_pk is None:  # refused before registration: listed with the refused entries
                continue
            status, reason = conn.execute(
                "SELECT status, reason_code FROM ingest.submission WHERE submission_pk = %s",
                (sub.submission_pk,),
            ).fetchone()
            reasons = dict(
                conn.execute(
                    "SELECT reason_code, count(DISTINCT (file_name, line_no)) FROM quality.rejection "
                    "WHERE round_seq = %s AND submission_pk = %s GROUP BY 1 ORDER BY 1",
                    (ingested.round_seq, sub.submission_pk),
                ).fetchall()
            )
            if status == "REJECTED" and reason and reason not in reasons:
                reasons[reason] = sum(f.rows_received for f in sub.files)
            report = reports.get(sub.submission_pk)
            summary.submissions.append(
                SubmissionSummary(
                    sub.submission_pk,
                    sub.source,
                    sub.submission_id,
                    status,
                    reason,
                    {f.file_name: f.rows_received for f in sub.files},
                    sum(reasons.values())
                    if status != "REJECTED"
                    else sum(f.rows_received for f in sub.files),
                    reasons,
                    str(report.path) if report else None,
                )
            )
        summary.refused = refused_entries(conn, ingested.round_seq, publish)
        conn.commit()
    return summary


def format_validation(summary: ValidationSummary) -> list[str]:
    lines = [f"round {summary.round_id}: Dukcapil snapshot {summary.dukcapil_snapshot or 'MISSING'}"]
    for s in summary.submissions:
        received = ", ".join(f"{k}={v}" for k, v in s.received.items()) or "-"
        reasons = ", ".join(f"{k}={v}" for k, v in s.reasons.items()) or "-"
        lines.append(
            f"  {s.source:<8} {s.submission_id:<24} {s.status:<9} rows {received}; rejected rows "
            f"{s.rejected_rows}; reasons {reasons}"
        )
    for r in summary.refused:
        lines.append(f"  REFUSED  {r.entry}: {r.detail} (feedback in {r.feedback_path})")
    if any(s.feedback_path is None for s in summary.submissions):
        lines.append("  feedback of the validated submissions is written when the round is merged")
    return lines


@dataclass
class RoundResult:
    validation: ValidationSummary
    merge: MergeSummary
    validate_seconds: float = 0.0  # discover + stage + validate + first feedback
    merge_seconds: float = 0.0  # the merge transaction alone


def validate_and_merge(
    round_id: str,
    *,
    landing_root: Path | None = None,
    publish_root: Path | None = None,
    threshold: float | None = None,
) -> RoundResult:
    """Stage and validate a round, merge it, then rewrite feedback (merging adds CONFLICT_LOST)."""
    started = time.monotonic()
    validation = stage_and_validate(
        round_id, landing_root=landing_root, publish_root=publish_root, threshold=threshold
    )
    validated = time.monotonic()
    publish = publish_root or settings().publish_root
    with engine.connect() as conn:
        merged = merge_round(conn, validation.round_seq)
        conn.commit()
        merge_seconds = time.monotonic() - validated
        reports = {r.submission_pk: r for r in write_round_feedback(conn, validation.round_seq, publish)}
        conn.commit()
    for sub in validation.submissions:
        if sub.submission_pk in reports:
            sub.feedback_path = str(reports[sub.submission_pk].path)
    return RoundResult(validation, merged, validated - started, merge_seconds)


def format_merge(result: MergeSummary, round_id: str) -> list[str]:
    if result.already_merged:
        return [f"round {round_id} was already merged: nothing changed"]
    lines = [f"round {round_id} merged:"]
    lines += [f"  {label:<32} {count}" for label, count in result.changes.items()]
    lines.append(f"  {'rows lost to a conflict':<32} {result.conflict_lost}")
    return lines


@dataclass
class PublicationResult:
    candidate: CandidateSummary
    audit: AuditOutcome
    published: PublishSummary | None  # None while the audit blocks the candidate
    step_seconds: dict[str, float] = field(default_factory=dict)


def rank_audit_publish(
    round_id: str,
    *,
    publish_root: Path | None = None,
    model_path: Path | None = None,
    programs_path: Path | None = None,
    audit_config: AuditConfig | None = None,
) -> PublicationResult:
    """Write-audit-publish for a merged round: candidate, GE audit, then the version's files.

    A blocked audit stops before publishing (the current version stays current); run again after
    `dtsen approve` to publish the approved candidate. Re-running a published round changes nothing.
    """
    cfg = settings()
    model = load_model(model_path)  # None: the configured file
    programs = load_programs(programs_path)
    seconds = {}
    with engine.connect() as conn:
        started = time.monotonic()
        candidate = build_candidate(conn, round_id, model, programs)
        seconds["candidate"] = time.monotonic() - started
        started = time.monotonic()
        audit = audit_version(conn, candidate.version, audit_config)
        seconds["audit"] = time.monotonic() - started
        published = None
        if audit.status in PUBLISHABLE + RELEASED:
            started = time.monotonic()
            published = publish_version(conn, candidate.version, publish_root or cfg.publish_root)
            seconds["publish"] = time.monotonic() - started
    return PublicationResult(candidate, audit, published, seconds)


def format_publication(result: PublicationResult) -> list[str]:
    c = result.candidate
    lines = [f"round {c.round_id}: version {c.version} ({'built now' if c.created_now else 'already built'})"]
    counts = c.counts or {}
    lines.append(f"  individuals {counts.get('individuals')}, families {counts.get('families')}")
    desil = counts.get("desil", {})
    if desil:
        lines.append(
            "  individuals per desil: "
            + ", ".join(
                f"{d}={v['individuals']}" for d, v in sorted(desil.items(), key=lambda kv: int(kv[0]))
            )
        )
    for program, p in (c.programs or {}).items():
        lines.append(
            f"  {program:<16} recipients {p['recipients']:>7}  added {p['added']:>6}  removed {p['removed']:>6}"
        )
    lines += ["  " + line for line in result.audit.report()]
    if result.published is None:
        lines.append(
            f"  NOT published: the audit blocked version {c.version}; the current version stays current. "
            f"Review the report, then `dtsen approve --version {c.version} --by NAME --reason TEXT` and run again."
        )
    elif result.published.published_now:
        lines.append(f"  published: {result.published.path}")
    else:
        lines.append(f"  published: {result.published.path} (before this call; a version is never rewritten)")
    return lines
