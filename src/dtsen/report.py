"""What a round did, read back from the warehouse: per submission, per refused entry, the merge and
the version. For operators (the `dtsen` command, the main job) and for tests; counts and codes only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from dtsen.feedback import FINAL, feedback_dir, rows_per_reason

# A submission's outcome, in one vocabulary for the `dtsen report` lines and the cockpit: the words its
# ringkasan.json tells the region. MERGED: every row merged; PARTIAL: merged, some rows rejected;
# REJECTED: refused whole, nothing merged. Until the outcome is final, the processing state (RECEIVED,
# STAGED, VALIDATED), which no ringkasan.json ever says.
DUPLICATE = "DUPLICATE_SUBMISSION"  # an identical resubmission: its rows were processed under the first


def submission_outcome(status: str, rejected_rows: int | None) -> str:
    """The outcome of a submission in processing state `status` with `rejected_rows` rows rejected."""
    if status == "MERGED" and rejected_rows:
        return "PARTIAL"
    return status


@dataclass
class SubmissionLine:
    submission_pk: int
    source: str
    submission_id: str
    status: str
    reason_code: str | None
    received: dict[str, int]  # data rows per file
    rejected_rows: int
    reasons: dict[str, int]  # rows per reason code
    feedback_path: str | None  # None until the outcome is final (refused, or merged)

    @property
    def outcome(self) -> str:
        """MERGED / PARTIAL / REJECTED as the region was told (see submission_outcome)."""
        return submission_outcome(self.status, self.rejected_rows)


@dataclass
class RefusedLine:
    entry: str  # printable name of the landing entry
    detail: str  # why, for operators
    feedback_path: str


@dataclass
class RoundReport:
    round_id: str
    round_seq: int
    status: str
    dukcapil_snapshot: str | None
    submissions: list[SubmissionLine] = field(default_factory=list)
    refused: list[RefusedLine] = field(default_factory=list)
    merge: dict | None = None  # ingest.round.merge_summary
    version: int | None = None  # the round's live candidate or published version

    def by_id(self) -> dict[str, SubmissionLine]:
        return {s.submission_id: s for s in self.submissions}


def round_report(conn: psycopg.Connection, round_id: str, publish_root: Path) -> RoundReport:
    row = conn.execute(
        "SELECT r.round_seq, r.status, s.snapshot_date, r.merge_summary, "
        "(SELECT v.version FROM publish.version v WHERE v.round_seq = r.round_seq AND v.status <> 'DISCARDED') "
        "FROM ingest.round r LEFT JOIN ingest.dukcapil_snapshot s ON s.snapshot_pk = r.dukcapil_snapshot_pk "
        "WHERE r.round_id = %s",
        (round_id,),
    ).fetchone()
    if row is None:
        return RoundReport(round_id, 0, "NOT REGISTERED", None)
    round_seq, status, snapshot_date, merge_summary, version = row
    report = RoundReport(
        round_id,
        round_seq,
        status,
        snapshot_date.isoformat() if snapshot_date else None,
        merge=merge_summary,
        version=version,
    )
    received: dict[int, dict[str, int]] = {}
    for pk, file_name, rows in conn.execute(
        "SELECT f.submission_pk, f.file_name, coalesce(f.rows_received, 0) FROM ingest.submission_file f "
        "JOIN ingest.submission s USING (submission_pk) WHERE s.round_seq = %s ORDER BY f.file_name",
        (round_seq,),
    ):
        received.setdefault(pk, {})[file_name] = rows
    reasons: dict[int, dict[str, int]] = {}
    for pk, code, rows in conn.execute(
        "SELECT submission_pk, reason_code, count(DISTINCT (file_name, line_no)) FROM quality.rejection "
        "WHERE round_seq = %s GROUP BY 1, 2 ORDER BY 1, 2",
        (round_seq,),
    ):
        reasons.setdefault(pk, {})[code] = rows
    for pk, source, submission_id, sub_status, code in conn.execute(
        "SELECT submission_pk, source, submission_id, status, reason_code FROM ingest.submission "
        "WHERE round_seq = %s ORDER BY submission_pk",
        (round_seq,),
    ).fetchall():
        files = received.get(pk, {})
        codes = rows_per_reason(reasons.get(pk, {}), sub_status, code, sum(files.values()))
        rejected = sum(files.values()) if sub_status == "REJECTED" else sum(codes.values())
        folder = feedback_dir(publish_root, round_id, submission_id)
        final = sub_status in FINAL and (folder / "ringkasan.json").exists()
        report.submissions.append(
            SubmissionLine(
                pk,
                source,
                submission_id,
                sub_status,
                code,
                files,
                rejected,
                codes,
                str(folder) if final else None,
            )
        )
    report.refused = [
        RefusedLine(entry, detail, str(feedback_dir(publish_root, round_id, folder)))
        for entry, detail, folder in conn.execute(
            "SELECT entry, detail, feedback_dir FROM ingest.refused_entry WHERE round_seq = %s ORDER BY refused_pk",
            (round_seq,),
        )
    ]
    return report


def format_round(report: RoundReport) -> list[str]:
    lines = [
        f"round {report.round_id} ({report.status}): Dukcapil snapshot {report.dukcapil_snapshot or 'MISSING'}"
    ]
    for s in report.submissions:
        received = ", ".join(f"{k}={v}" for k, v in s.received.items()) or "-"
        reasons = ", ".join(f"{k}={v}" for k, v in s.reasons.items()) or "-"
        lines.append(
            f"  {s.source:<8} {s.submission_id:<24} {s.outcome:<9} rows {received}; rejected rows "
            f"{s.rejected_rows}; reasons {reasons}"
        )
    for r in report.refused:
        lines.append(f"  REFUSED  {r.entry}: {r.detail} (feedback in {r.feedback_path})")
    if any(s.feedback_path is None for s in report.submissions):
        lines.append("  feedback of validated submissions is written when the round is merged")
    if report.merge:
        lines.append(f"round {report.round_id} merged:")
        lines += [f"  {label:<36} {count}" for label, count in report.merge.get("changes", {}).items()]
        lines.append(f"  {'rows lost to a conflict':<36} {report.merge.get('conflict_lost', 0)}")
    return lines


def format_version(conn: psycopg.Connection, version: int) -> list[str]:
    """A version's counts, recipients per program, audit and where it was published."""
    row = conn.execute(
        "SELECT r.round_id, v.status, v.counts, v.programs, v.audit, v.approved_by, v.path "
        "FROM publish.version v JOIN ingest.round r ON r.round_seq = v.round_seq WHERE v.version = %s",
        (version,),
    ).fetchone()
    if row is None:
        return [f"version {version}: unknown"]
    round_id, status, counts, programs, audit, approved_by, path = row
    counts, audit = counts or {}, audit or {}
    lines = [f"round {round_id}: version {version} ({status})"]
    lines.append(f"  individuals {counts.get('individuals')}, families {counts.get('families')}")
    desil = counts.get("desil", {})
    if desil:
        lines.append(
            "  individuals per desil: "
            + ", ".join(
                f"{d}={v['individuals']}" for d, v in sorted(desil.items(), key=lambda kv: int(kv[0]))
            )
        )
    for program, p in (programs or {}).items():
        lines.append(
            f"  {program:<16} recipients {p['recipients']:>7}  added {p['added']:>6}  removed {p['removed']:>6}"
        )
    lines.append(f"  audit: {'passed' if audit.get('success') else 'FAILED'}")
    for check in audit.get("checks", []):
        if not check["success"]:
            lines.append(
                f"    failed: {check['rule']}: {check['description']} (observed {check['observed']})"
            )
    if approved_by:
        lines.append(f"  approved by {approved_by}")
    if status in ("PUBLISHED", "SUPERSEDED"):
        lines.append(f"  published: {path}")
    elif status == "BLOCKED":
        lines.append(
            f"  NOT published: the audit blocked version {version}; the current version stays current. "
            f"Review the report, then `dtsen approve --version {version} --by NAME --reason TEXT` and run again."
        )
    return lines
