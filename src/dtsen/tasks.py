"""The steps of a round as Airflow tasks call them: each opens its own warehouse connection, is safe
to retry (every step is idempotent), and returns a small JSON-able dict of ids and counts, never rows
and never personal data (it goes to XCom). No Airflow import here: the DAG files wrap these.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dtsen.config import settings
from dtsen.feedback import write_round_feedback
from dtsen.ingest.round import ingest_listed_submission, open_round
from dtsen.merge import merge_round
from dtsen.programs import load_programs
from dtsen.publish.audit import DRIFT_RULES, approve_version, audit_version
from dtsen.publish.candidate import build_candidate
from dtsen.publish.version import publish_version
from dtsen.rank.model import load_model
from dtsen.validate.round import finish_validation, validate_snapshot, validate_submission
from dtsen.warehouse import engine
from dtsen.warehouse.migrate import migrate

log = logging.getLogger(__name__)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def prepare_round(round_id: str, landing_root: str | None = None) -> dict:
    """Migrate, register the round, load and check its Dukcapil snapshot, list its submissions."""
    with engine.connect() as conn:
        migrate(conn)
        conn.commit()
        opened = open_round(conn, round_id, landing_root=_path(landing_root))
        conn.commit()
        if opened.snapshot is not None:
            validate_snapshot(conn, opened.snapshot.snapshot_pk)
            conn.commit()
        status = conn.execute(
            "SELECT status FROM ingest.round WHERE round_seq = %s", (opened.round_seq,)
        ).fetchone()[0]
    return {
        "round_id": round_id,
        "round_seq": opened.round_seq,
        "round_status": status,
        "dukcapil_snapshot": opened.snapshot.snapshot_date.isoformat() if opened.snapshot else None,
        "submissions": [{"source": s.source, "submission_id": s.submission_id} for s in opened.submissions],
        "refused_landing_entries": len(opened.refused),
    }


def stage_and_validate_submission(
    round_id: str, source: str, submission_id: str, landing_root: str | None = None
) -> dict:
    """Check, stage and validate one submission; a bad submission ends REJECTED here, not as an error."""
    with engine.connect() as conn:
        outcome = ingest_listed_submission(
            conn, round_id, source, submission_id, landing_root=_path(landing_root)
        )
        conn.commit()
        row_rejections = 0
        if outcome.submission_pk is not None:  # None: refused as a submission (its feedback says why)
            row_rejections = validate_submission(conn, outcome.submission_pk).row_rejections
            conn.commit()
    return {
        "submission_pk": outcome.submission_pk,
        "source": source,
        "submission_id": submission_id,
        "status": outcome.status,
        "reason_code": outcome.reason_code,
        "rows_received": sum(f.rows_received for f in outcome.files),
        "row_rejections": row_rejections,
    }


def finish_round_validation(round_id: str, quality_gate_threshold: float | None = None) -> dict:
    """Cross-row and cross-source rules, the quality gate, NIK-repair suggestions; round VALIDATED."""
    with engine.connect() as conn:
        round_seq = _round_seq(conn, round_id)
        gate = finish_validation(conn, round_seq, quality_gate_threshold)
        conn.commit()
    return {
        "round_id": round_id,
        "already_validated": gate is None,
        "gate_rejected_submissions": sum(1 for g in gate or [] if not g.passed),
    }


def merge(round_id: str) -> dict:
    with engine.connect() as conn:
        summary = merge_round(conn, _round_seq(conn, round_id))
        conn.commit()
    return {
        "round_id": round_id,
        "already_merged": summary.already_merged,
        "changes": summary.changes,
        "conflict_lost": summary.conflict_lost,
    }


def write_feedback(round_id: str, publish_root: str | None = None) -> list[dict]:
    """Every final submission's ringkasan.json and ditolak.csv (after the merge: it adds CONFLICT_LOST),
    and those of the landing entries refused as submissions."""
    root = _path(publish_root) or settings().publish_root
    with engine.connect() as conn:
        round_seq = _round_seq(conn, round_id)
        reports = write_round_feedback(conn, round_seq, root)
        regions = dict(
            conn.execute(
                "SELECT submission_pk, kode_wilayah FROM ingest.submission WHERE round_seq = %s", (round_seq,)
            ).fetchall()
        )
        sources = dict(
            conn.execute(
                "SELECT submission_pk, source FROM ingest.submission WHERE round_seq = %s", (round_seq,)
            ).fetchall()
        )
        conn.commit()
    return [
        {
            "submission_pk": r.submission_pk,
            "refused_pk": r.refused_pk,
            "source": sources.get(r.submission_pk),
            "kode_wilayah": regions.get(r.submission_pk),
            "status": r.status,
            "rejected_rows": r.rejected_rows,
            "path": str(r.path),
        }
        for r in reports
    ]


def build_and_audit(
    round_id: str, approve_drift_reason: str | None = None, approved_by: str | None = None
) -> dict:
    """Candidate version and its audit; with a reason, a drift-blocked candidate is approved (recorded)."""
    with engine.connect() as conn:
        candidate = build_candidate(conn, round_id, load_model(), load_programs())
        audit = audit_version(conn, candidate.version)
        status = audit.status
        # the trigger form approves drift only (an admin may also approve desil shares: dtsen approve)
        only_drift = all(c["success"] or c["rule"] in DRIFT_RULES for c in audit.checks)
        if status == "BLOCKED" and approve_drift_reason and only_drift:
            approve_version(conn, candidate.version, approved_by or "airflow-trigger", approve_drift_reason)
            status = "APPROVED"
    return {
        "round_id": round_id,
        "version": candidate.version,
        "status": status,
        "audit_passed": audit.success,
        "failed_checks": [c["rule"] for c in audit.checks if not c["success"]],
        "drifted_regencies": sorted({d["kode_kabupaten"] for d in audit.drift_flagged}),
        "report": audit.report(),  # counts and regency codes only
    }


def publish(version: int, publish_root: str | None = None) -> dict:
    root = _path(publish_root) or settings().publish_root
    with engine.connect() as conn:
        published = publish_version(conn, version, root)
    manifest = published.manifest
    return {
        "version": version,
        "round_id": manifest.get("round_id"),
        "path": str(published.path),
        "published_now": published.published_now,
    }


def _round_seq(conn, round_id: str) -> int:
    found = conn.execute("SELECT round_seq FROM ingest.round WHERE round_id = %s", (round_id,)).fetchone()
    if not found:
        raise LookupError(f"round {round_id} is not registered: run prepare_round first")
    return found[0]


def notify_programs(version: int | None, send) -> dict:
    """Email and webhook every program owner of `version` (None: the current version)."""
    from dtsen.notify.deliver import notify_programs as deliver
    from dtsen.notify.deliver import version_to_announce
    from dtsen.notify.subscribers import load_subscribers

    with engine.connect() as conn:
        version = version_to_announce(conn, version, settings().publish_root)
        if version is None:
            return {"version": None, "emails_sent": 0, "webhooks_delivered": 0}
        return deliver(conn, int(version), load_subscribers(), send)
