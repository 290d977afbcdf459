"""Audit a candidate version with Great Expectations (write-audit-publish: "audit"), and approvals.

The suite expectations/version_audit.json checks the contract's invariants on what changed since the
previous published version (which passed them; the spans' constraints hold the rest), the desil
shares, and drift against the previous published version per regency and program.
A failing audit marks the candidate BLOCKED: the current version stays current until an admin
approves the candidate explicitly (who and why are recorded) or it is discarded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from dtsen.errors import DataError
from dtsen.gx import Computed, observed_value, progress_parts, validate_views
from dtsen.integrity.summary import integrity_warnings, version_integrity
from dtsen.paths import EXPECTATIONS_DIR
from dtsen.progress import Progress
from dtsen.publish.audit_shares import (
    SPLIT_ASSETS,
    clear_scratch,
    compute_shares,
    probe_profile,
    share_bounds,
    share_parts,
)
from dtsen.publish.candidate import PUBLISH_LOCK_KEY
from dtsen.sqlfiles import statements

log = logging.getLogger(__name__)

AUDIT_SUITE_PATH = EXPECTATIONS_DIR / "version_audit.json"


class AuditError(DataError):
    pass


@dataclass(frozen=True)
class AuditConfig:
    desil_share_tolerance: float
    drift_max_share: float
    drift_min_base: int

    @classmethod
    def load(cls, path: Path | None = None) -> AuditConfig:
        from dtsen.config import settings

        path = Path(path or settings().audit_config_path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                float(raw["desil_share_tolerance"]), float(raw["drift_max_share"]), int(raw["drift_min_base"])
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditError(
                f"audit configuration {path} cannot be used: {type(exc).__name__} {exc}"
            ) from exc


@dataclass
class AuditOutcome:
    version: int
    status: str  # AUDITED | BLOCKED | APPROVED | PUBLISHED | ...
    success: bool
    checks: list[dict] = field(default_factory=list)
    drift_flagged: list[dict] = field(default_factory=list)  # regencies beyond the drift threshold
    warnings: list[str] = field(default_factory=list)  # integrity flags: shown, never blocking

    def report(self) -> list[str]:
        """For operators: which checks failed and which regencies drifted (no personal data)."""
        lines = [f"audit of version {self.version}: {'passed' if self.success else 'FAILED'} ({self.status})"]
        for check in self.checks:
            if not check["success"]:
                lines.append(
                    f"  failed: {check['rule']}: {check['description']} (observed {check['observed']})"
                )
        lines += [f"  warning: {w}" for w in self.warnings]
        for d in self.drift_flagged:
            lines.append(
                f"  drift: regency {d['kode_kabupaten']} program {d['program']}: {d['sebelumnya']} recipients before, "
                f"+{d['ditambah']} ({d['added_share']:.0%}) -{d['dikeluarkan']} ({d['removed_share']:.0%})"
            )
        return lines


def _audit_views(
    conn: psycopg.Connection,
    version: int,
    previous: int | None,
    snapshot_pk: int | None,
    previous_snapshot_pk: int | None,
    config: AuditConfig,
    share: dict[str, int | None] | None = None,
) -> dict[str, str]:
    """The audit's views as plain SQL: a view cannot take parameters, so they are bound client-side.
    `share`: the key ranges of one session's members and families (`share_bounds`); None: all."""
    params = (
        dict.fromkeys(("low_nik", "high_nik", "low_no_kk", "high_no_kk"))
        | (share or {})
        | {
            "version": version,
            "previous": previous if previous is not None else -1,
            "snapshot_pk": snapshot_pk,
            "previous_snapshot_pk": previous_snapshot_pk if previous_snapshot_pk is not None else -1,
            "min_base": config.drift_min_base,
        }
    )
    cursor = psycopg.ClientCursor(conn)
    return {name: cursor.mogrify(text, params) for name, text in statements("publish/audit.sql").items()}


def audit_version(
    conn: psycopg.Connection,
    version: int,
    config: AuditConfig | None = None,
    connect: Callable[[], psycopg.Connection] | None = None,
    sessions: int = 1,
) -> AuditOutcome:
    """Run the audit of a CANDIDATE (idempotent: an audited version returns its stored outcome).

    With `connect` and more than one session, the members and families batches are computed by that
    many sessions at once, each a share by key, into committed scratch tables
    (dtsen.publish.audit_shares): only for a candidate already committed (the sessions see what is
    committed; a dry run audits in one session). The checks and the outcome stay in `conn`'s
    transaction, which drops the scratch tables."""
    config = config or AuditConfig.load()
    # one audit of a version at a time: a second waits, then finds the first's outcome stored
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
    row = conn.execute(
        "SELECT v.status, v.previous_version, r.dukcapil_snapshot_pk, v.audit, "
        "(SELECT pr.dukcapil_snapshot_pk FROM publish.version pv JOIN ingest.round pr ON pr.round_seq = pv.round_seq "
        " WHERE pv.version = v.previous_version) FROM publish.version v "
        "JOIN ingest.round r ON r.round_seq = v.round_seq WHERE v.version = %s",
        (version,),
    ).fetchone()
    if not row:
        raise AuditError(f"version {version} does not exist")
    status, previous, snapshot_pk, stored, previous_snapshot_pk = row
    if status != "CANDIDATE":
        stored = stored or {}
        return AuditOutcome(
            version,
            status,
            bool(stored.get("success")),
            stored.get("checks", []),
            stored.get("drift_flagged", []),
            stored.get("warnings", []),
        )
    views = _audit_views(conn, version, previous, snapshot_pk, previous_snapshot_pk, config)
    if previous is not None:  # the drift computed once: the checks, the flagged rows and the cockpit read it
        conn.execute(
            "INSERT INTO publish.recipient_drift (version, previous_version, kode_kabupaten, program, sebelumnya, "  # noqa: S608 (ints, our SQL)
            f"ditambah, dikeluarkan, added_share, removed_share) SELECT {int(version)}, {int(previous)}, d.* "
            f"FROM ({views['drift']}) d"
        )
        views["drift"] = (
            "SELECT kode_kabupaten, program, sebelumnya, ditambah, dikeluarkan, added_share, removed_share "  # noqa: S608
            f"FROM publish.recipient_drift WHERE version = {int(version)}"
        )
    in_sessions = connect is not None and sessions > 1
    shares = share_bounds(conn, sessions) if in_sessions else [None]
    # one count of parts for the stage: the shares as they are computed, then the suite's batches
    prefix = f"audit_v{version}_"  # each batch is named for its asset
    placeholders = {prefix + a: (Computed("", 0) if a in SPLIT_ASSETS else q, {}) for a, q in views.items()}
    progress = Progress(
        f"audit of candidate v{version}", share_parts(len(shares)) + progress_parts(placeholders)
    )
    computed: dict[str, str | Computed] = dict(views)
    computed |= compute_shares(
        conn,
        connect if in_sessions else None,
        version,
        [_audit_views(conn, version, previous, snapshot_pk, previous_snapshot_pk, config, s) for s in shares],
        probe_profile(conn, version, previous),
        progress,
    )
    suite = json.loads(AUDIT_SUITE_PATH.read_text(encoding="utf-8"))
    batches = {}
    for asset, query in computed.items():
        expectations = [e for e in suite["expectations"] if e["meta"]["asset"] == asset]
        sub_suite = {"name": f"{suite['name']}_{asset}", "expectations": expectations}
        batches[prefix + asset] = (query, sub_suite)
    parameters = {
        "desil_share_min": 0.1 - config.desil_share_tolerance,
        "desil_share_max": 0.1 + config.desil_share_tolerance,
        "drift_max_share": config.drift_max_share,
    }
    # sees the candidate built in this transaction
    results = validate_views(conn, batches, parameters, stage=progress)
    checks = []
    for result in results.values():
        for item in result.results:
            meta = item.expectation_config.meta
            checks.append(
                {
                    "rule": meta["rule"],
                    "asset": meta["asset"],
                    "description": meta["description"],
                    "success": bool(item.success),
                    "observed": observed_value(item),
                }
            )
    success = all(c["success"] for c in checks)
    flagged_rows = conn.execute(
        f"SELECT * FROM ({views['drift']}) d WHERE added_share > %(m)s OR removed_share > %(m)s "  # noqa: S608
        "ORDER BY kode_kabupaten, program",
        {"m": config.drift_max_share},
    )
    names = [d.name for d in flagged_rows.description]
    drift_flagged = [dict(zip(names, r, strict=True)) for r in flagged_rows.fetchall()]
    new_status = "AUDITED" if success else "BLOCKED"
    integrity = version_integrity(conn, version)
    warnings = integrity_warnings(integrity)
    audit = {
        "success": success,
        "checks": checks,
        "drift_flagged": drift_flagged,
        "warnings": warnings,
        "integrity": integrity,
        "thresholds": parameters | {"drift_min_base": config.drift_min_base},
    }
    conn.execute(
        "UPDATE publish.version SET status = %s, audit = %s WHERE version = %s AND status = 'CANDIDATE'",
        (new_status, Jsonb(audit), version),
    )
    if in_sessions:
        clear_scratch(conn)
    outcome = AuditOutcome(version, new_status, success, checks, drift_flagged, warnings)
    for line in outcome.report():
        log.info("%s", line)
    return outcome


# Checks an admin may overrule (a real shift in who is poor, a decree changing a program); a broken
# invariant (a duplicate NIK, a headless family, a deceased recipient) can never be approved.
DRIFT_RULES = frozenset({"drift_added", "drift_removed"})
APPROVABLE_RULES = DRIFT_RULES | {"desil_shares"}


def approve_version(
    conn: psycopg.Connection,
    version: int,
    approved_by: str,
    reason: str,
    channel: str = "cli",
    dag_run_id: str | None = None,
) -> None:
    """An admin lets a BLOCKED candidate through; who and why are kept with the version, and the
    decision (with how it was made: `channel`) in publish.approval_decision."""
    if not approved_by.strip() or not reason.strip():
        raise AuditError("an approval needs the approver's name and a reason")
    # The row is locked before its status is read: a concurrent answer (the Airflow approval task,
    # another `dtsen approve`) waits here and then sees the candidate decided, instead of both reading
    # BLOCKED and the later one failing on an update that no longer matches.
    row = conn.execute(
        "SELECT status, audit, approved_by FROM publish.version WHERE version = %s FOR UPDATE", (version,)
    ).fetchone()
    if row is None or row[0] != "BLOCKED":
        status, approved = (row[0], row[2]) if row else ("unknown", None)
        raise AuditError(
            f"version {version} is {status}{f' (approved by {approved})' if approved else ''}; "
            "only a BLOCKED candidate can be approved"
        )
    broken = sorted(
        c["rule"]
        for c in (row[1] or {}).get("checks", [])
        if not c["success"] and c["rule"] not in APPROVABLE_RULES
    )
    if broken:
        raise AuditError(
            f"version {version} breaks {', '.join(broken)}: an invariant cannot be approved; fix the data, "
            f"then `dtsen discard --version {version} --by NAME --reason TEXT` and run the round again"
        )
    conn.execute(
        "UPDATE publish.version SET status = 'APPROVED', approved_by = %s, approval_reason = %s, approved_at = now() "
        "WHERE version = %s",
        (approved_by.strip(), reason.strip(), version),
    )
    record_decision(conn, version, "APPROVED", approved_by.strip(), channel, reason.strip(), dag_run_id)


def record_decision(
    conn: psycopg.Connection,
    version: int,
    outcome: str,
    decided_by: str | None,
    channel: str,
    reason: str | None = None,
    dag_run_id: str | None = None,
    refused_because: str | None = None,
) -> None:
    """Append a decision on a blocked candidate (APPROVED, REJECTED, TIMED_OUT: nobody decides a
    timeout; REFUSED: an answer that is no valid approval, `refused_because` says why). Anything but
    APPROVED changes nothing else: the candidate stays BLOCKED. `reason` is only what the person wrote."""
    conn.execute(
        "INSERT INTO publish.approval_decision "
        "(version, outcome, decided_by, channel, reason, dag_run_id, refused_because) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (version, outcome, decided_by, channel, reason, dag_run_id, refused_because),
    )


def discard_version(conn: psycopg.Connection, version: int, reason: str) -> None:
    """Drop an unpublished candidate (e.g. after fixing the ranking model), freeing its round."""
    updated = conn.execute(
        "UPDATE publish.version SET status = 'DISCARDED', approval_reason = %s "
        "WHERE version = %s AND status IN ('CANDIDATE', 'AUDITED', 'BLOCKED', 'APPROVED') RETURNING version",
        (reason, version),
    ).fetchone()
    if not updated:
        raise AuditError(f"version {version} cannot be discarded: it is published or unknown")
