"""What a round did, read back from the warehouse: per submission, per refused entry, the merge and
the version. For operators (the `dtsen` command, the main job) and for tests; counts and codes only."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from dtsen.contract import SOURCES
from dtsen.feedback import FINAL, feedback_dir, rows_per_reason
from dtsen.integrity.summary import integrity_warnings

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
        # in the contract's source order, then by id: the same listing whatever order tasks ran in
        "WHERE round_seq = %s ORDER BY array_position(%s::text[], source), submission_id",
        (round_seq, list(SOURCES)),
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
    if report.submissions:
        lines.append("  " + submission_outcomes(report.submissions))
    for r in report.refused:
        lines.append(f"  REFUSED  {r.entry}: {r.detail} (feedback in {r.feedback_path})")
    if any(s.feedback_path is None for s in report.submissions):
        lines.append("  feedback of validated submissions is written when the round is merged")
    if report.merge:
        lines.append(f"round {report.round_id} merged:")
        # persons' lines, then families', then the rest (the warehouse keeps them as jsonb, unordered)
        changes = sorted(
            report.merge.get("changes", {}).items(),
            key=lambda item: (not item[0].startswith("persons"), not item[0].startswith("families"), item[0]),
        )
        lines += [f"  {label:<36} {count}" for label, count in changes]
        lines.append(f"  {'rows lost to a conflict':<36} {report.merge.get('conflict_lost', 0)}")
    return lines


_NOT_YET = {
    "VALIDATED": "validated, not merged yet",
    "STAGED": "staged, not validated yet",
    "RECEIVED": "received, not staged yet",
}


def submission_outcomes(submissions: list[SubmissionLine]) -> str:
    """How many submissions were validated and merged (whole or in part), are not final yet, or were
    rejected as a whole, each rejection with its reason code and the submissions it hit."""
    outcomes = Counter(s.outcome for s in submissions)
    parts = []
    whole, partly = outcomes.pop("MERGED", 0), outcomes.pop("PARTIAL", 0)
    if whole or partly:
        kinds = [f"{whole} MERGED"] if whole else []
        kinds += [f"{partly} PARTIAL: some of their rows rejected"] if partly else []
        parts.append(f"{whole + partly} validated and merged ({', '.join(kinds)})")
    rejected: dict[str, list[str]] = {}
    for s in submissions:
        if s.outcome == "REJECTED":
            rejected.setdefault(s.reason_code or "no reason code", []).append(s.submission_id)
    if outcomes.pop("REJECTED", 0):
        why = "; ".join(f"{code}: {', '.join(ids)}" for code, ids in sorted(rejected.items()))
        parts.append(f"{sum(len(ids) for ids in rejected.values())} REJECTED as a whole ({why})")
    parts += [f"{n} {_NOT_YET.get(outcome, outcome)}" for outcome, n in outcomes.items()]
    return f"{len(submissions)} submissions: " + ", ".join(parts)


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
    warnings = integrity_lines(audit)
    verdict = "passed" if audit.get("success") else "FAILED"
    if warnings:
        verdict += (
            f", with {len(warnings)} integrity warnings (they never block a version and exclude nobody)"
        )
    lines.append(f"  audit: {verdict}")
    for check in audit.get("checks", []):
        if not check["success"]:
            lines.append(
                f"    failed: {check['rule']}: {check['description']} (observed {check['observed']})"
            )
    lines += [f"    warning: {w}" for w in warnings]
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


def integrity_lines(audit: dict) -> list[str]:
    """A version's integrity warnings in words: each implausible-recipient rule met (what it means, how
    many families, in which regencies) and each split surge; from the audit it stored."""
    section = audit.get("integrity")
    if not section:  # audited before the integrity section existed: its stored sentences
        return [w.removeprefix("integrity: ") for w in audit.get("warnings", [])]
    lines = []
    for rule, entry in sorted(section.get("implausible", {}).items()):
        if entry.get("families"):
            regencies = ", ".join(f"{k}={n}" for k, n in sorted(entry["per_kabupaten"].items()))
            lines.append(
                f"{entry['families']} families meet rule {rule} ({entry['description']}), implausible "
                f"for their desil: listed for Kemensos's ground check (penerima_janggal.csv); per regency "
                f"{regencies}"
            )
    splits = section.get("splits", {})
    lines += [w.removeprefix("integrity: ") for w in integrity_warnings({"splits": splits})]
    return lines


def format_steps(summaries: dict) -> list[str]:
    """What this run of a round's steps did, in words, from the steps' summaries (run_round's shape:
    the per-submission step's a list, a skipped step's {"skipped": why}): each step says what it did
    now and what it found done by an earlier run, so a rerun reads as one."""
    lines, states = [], []
    for name, summary in summaries.items():
        text, state, more = _describe(name, summary)
        lines.append(f"  {name:<19}{text}")
        lines += [f"  {'':<19}{line}" for line in more]
        states.append(state)
    head = ["this run's steps:"]
    if "earlier" in states and "now" not in states:
        head.append(
            "  nothing new: an earlier run had done every step; nothing was merged, published or sent again"
        )
    return head + lines


def _describe(name: str, s) -> tuple[str, str | None, list[str]]:
    """(what the step did, "now" / "earlier" / None, further lines)."""
    if isinstance(s, dict) and "skipped" in s:
        return f"skipped: {s['skipped']}", None, []
    if isinstance(s, dict) and set(s) == {"task_state"}:  # an Airflow task that left no summary
        return f"task {s['task_state']}, no summary: see its log", None, []
    describe = _DESCRIBE.get(name)
    if describe is None:
        return ", ".join(f"{k}={v}" for k, v in s.items()) if isinstance(s, dict) else str(s), None, []
    return describe(s)


def _open_round(s: dict):
    fresh = s.get("round_status") == "OPEN"
    parts = [
        "round open" if fresh else f"round already {s.get('round_status')} (registered by an earlier run)"
    ]
    snapshot, held = s.get("dukcapil_snapshot"), s.get("dukcapil_held")
    if held:
        parts.append(
            f"Dukcapil extract {held['snapshot']} held for a person's decision (review {held['review']}): "
            "nothing of it applied"
        )
    elif snapshot is None:
        parts.append("no Dukcapil snapshot (NIK checks cannot run)")
    elif s.get("dukcapil_loaded_now"):
        parts.append(f"Dukcapil snapshot {snapshot} loaded now ({s.get('dukcapil_rows', 0)} persons)")
    else:
        parts.append(f"Dukcapil snapshot {snapshot} already loaded")
    if s.get("dukcapil_conflicting_niks"):
        parts.append(
            f"{s['dukcapil_conflicting_niks']} NIKs listed twice with different content in the extract "
            "(kept as they were; report it to Dukcapil)"
        )
    parts.append(f"{len(s.get('submissions', []))} submissions in the landing zone")
    if s.get("refused_landing_entries"):
        parts.append(f"{s['refused_landing_entries']} landing entries refused (their feedback says why)")
    return "; ".join(parts), "now" if fresh or s.get("dukcapil_loaded_now") else "earlier", []


def _extract_review(s: dict):
    if not s.get("held"):
        return "no Dukcapil extract held", None, []
    decision = {"APPLY": "applied", "KEEP_REFERENCE": "set aside (the reference kept as it stood)"}
    return (
        f"the held extract (review {s.get('review')}) was {decision.get(s.get('decision'), s.get('decision'))} "
        f"by a person's decision; the round uses snapshot {s.get('dukcapil_snapshot') or 'none'}",
        "now",
        [],
    )


def _stage_and_validate(items: list):
    items = [x for x in items if isinstance(x, dict) and "skipped" not in x]
    if not items:
        return "no submissions", None, []
    now = [x for x in items if x.get("processed_now")]
    parts = []
    if now:
        part = f"{len(now)} submissions staged and validated now"
        refused = Counter(
            x.get("reason_code") or "no reason code" for x in now if x.get("status") == "REJECTED"
        )
        if refused:
            codes = ", ".join(f"{code} {n}" for code, n in sorted(refused.items()))
            part += f", of which {sum(refused.values())} rejected as a whole ({codes})"
        parts.append(
            part + f"; {sum(x.get('row_rejections', 0) for x in now)} rows rejected by the row rules"
        )
    if len(items) > len(now):
        parts.append(f"{len(items) - len(now)} already processed by an earlier run (not staged again)")
    return "; ".join(parts), "now" if now else "earlier", []


def _finish_validation(s: dict):
    if s.get("already_validated"):
        return "already validated by an earlier run", "earlier", []
    gate = s.get("gate_rejected_submissions", 0)
    return (
        f"cross-row and cross-source rules and the quality gate run now: {gate} submissions rejected by the gate",
        "now",
        [],
    )


def _merge(s: dict):
    if s.get("dry_run"):
        return "dry run: nothing merged (rank_and_audit rehearses the merge and rolls it back)", None, []
    if s.get("already_merged"):
        return "already merged by an earlier run: nothing changed now", "earlier", []
    return f"merged now ({s.get('conflict_lost', 0)} rows lost to a conflict)", "now", []


def _integrity(s: dict):
    if s.get("dry_run"):
        return "dry run: not checked (nothing was merged)", None, []
    when = "now" if s.get("detected_now") else "earlier"
    by = "" if when == "now" else " (by an earlier run)"
    if not s.get("scored"):
        return f"split check not scored{by}: {s.get('why_not_scored')}", when, []
    c = s.get("counts") or {}
    return (
        f"split check scored{by}: {c.get('villages_scored', 0)} villages and {c.get('accounts_scored', 0)} accounts, "
        f"{c.get('villages_flagged', 0)} villages and {c.get('accounts_flagged', 0)} accounts flagged "
        f"({c.get('families_involved', 0)} families involved)",
        when,
        [],
    )


def _cases(s: dict):
    if s.get("dry_run"):
        return "dry run: no cases opened (nothing was merged)", None, []
    when = "earlier" if s.get("done_before") else "now"
    by = " (by an earlier run)" if when == "earlier" else ""
    flags = s.get("flags") or {}
    raised = ", ".join(f"{origin} {n}" for origin, n in sorted(flags.items())) or "none"
    return (
        f"verification cases{by}: {s.get('opened', 0)} opened, {s.get('reasons_added', 0)} reasons added, "
        f"{sum((s.get('resolved') or {}).values())} resolved, {s.get('expired', 0)} expired; flags per origin: {raised}"
        + (
            f"; {s['aduan']['rows']} objections and proposals, {s['aduan']['with_case']} with a case"
            if (s.get("aduan") or {}).get("rows")
            else ""
        ),
        when,
        [],
    )


def _aduan_outcomes(s: dict):
    if s.get("dry_run"):
        return "dry run: no outcomes of objections told", None, []
    when = "earlier" if s.get("done_before") else "now"
    statuses = ", ".join(f"{k} {n}" for k, n in sorted((s.get("status") or {}).items())) or "none"
    text = (
        f"objections and proposals told{' (by an earlier run)' if when == 'earlier' else ''}: "
        f"{s.get('rows', 0)} rows in hasil_aduan.csv ({statuses}), {s.get('regions', 0)} region files, "
        f"{s.get('callbacks_delivered', 0)} callbacks delivered"
    )
    undelivered = s.get("callbacks_undelivered") or []
    if undelivered:
        text += f"; {len(undelivered)} callback(s) not delivered: a rerun of the step posts them again"
    return text, when, [f"not delivered: {u}" for u in undelivered]


def _feedback(s: dict):
    written = s.get("submissions_reported", 0) + s.get("refused_entries_reported", 0)
    earlier = s.get("already_reported", 0)
    parts = []
    if written:
        parts.append(
            f"ringkasan.json and ditolak.csv written now for {s.get('submissions_reported', 0)} submissions"
            + (
                f" and {s['refused_entries_reported']} refused entries"
                if s.get("refused_entries_reported")
                else ""
            )
            + f" ({s.get('rows_listed', 0)} rejected rows listed)"
        )
    if earlier:
        parts.append(f"{earlier} feedback folders written before (left as they were)")
    if "already_reported" not in s:  # a summary that cannot tell new feedback from rewritten
        state = None
    else:
        state = "now" if written else ("earlier" if earlier else None)
    return "; ".join(parts) or "no submission's outcome is final yet", state, []


def _notices(sent: int, before: int, what: str):
    parts = [f"{sent} {what} sent now"] if sent else []
    if before:
        parts.append(f"{before}{'' if sent else ' ' + what} sent by an earlier run (not sent again)")
    return "; ".join(parts) or f"no {what} due", "now" if sent else ("earlier" if before else None), []


def _notify_regions(s: dict):
    if s.get("dry_run"):
        return "dry run: no region is emailed", None, []
    return _notices(s.get("emails_sent", 0), s.get("already_sent", 0), "region emails")


def _rank_and_audit(s: dict):
    failed = f"; failed checks: {', '.join(s['failed_checks'])}" if s.get("failed_checks") else ""
    if s.get("dry_run"):
        changes = s.get("changes") or {}
        if not changes:  # merge_round returns no changes only for a round merged before
            would = "the merge would change nothing: the round was merged by an earlier run"
        elif not any(changes.values()):
            would = "the merge would change nothing"
        else:
            would = "the merge would change: " + ", ".join(f"{k} {v}" for k, v in changes.items() if v)
        return (
            f"dry run: version {s.get('rolled_back_version')} was built, audited ({s.get('status')}) and "
            f"rolled back; the registry is unchanged{failed}",
            None,
            [would, *s.get("report", [])],
        )
    if s.get("built_now"):
        return (
            f"candidate version {s.get('version')} built and audited now: {s.get('status')}{failed}",
            "now",
            [],
        )
    return (
        f"version {s.get('version')} was built and audited by an earlier run (now {s.get('status')})",
        "earlier",
        [],
    )


def _approval(s: dict):
    if s.get("approvable"):
        return f"version {s.get('version')} waits for a person's approval", None, []
    if s.get("decision"):
        why = f" ({s['refused_because']})" if s.get("refused_because") else ""
        return f"version {s.get('version')}: {s['decision']}{why}", "now", []
    return "nothing to decide", None, []


def _publish(s: dict):
    if s.get("published_now"):
        return f"version {s.get('version')} published now: {s.get('path')}", "now", []
    return (
        f"version {s.get('version')} was already published by an earlier run: nothing rewritten",
        "earlier",
        [],
    )


def _notify_programs(s: dict):
    sent = s.get("emails_sent", 0) + s.get("webhooks_delivered", 0)
    text, state, more = _notices(
        sent, s.get("already_sent", 0), f"notices of version {s.get('version')} to program owners"
    )
    undelivered = s.get("webhooks_undelivered") or []
    if undelivered:  # the step did not fail for them: they are retried by `dtsen notify-retry`
        text += f"; {len(undelivered)} webhook(s) not delivered yet, retried later by `dtsen notify-retry`"
        more = more + [f"not delivered: {u}" for u in undelivered]
    return text, state, more


_DESCRIBE = {
    "open_round": _open_round,
    "extract_review": _extract_review,
    "stage_and_validate": _stage_and_validate,
    "finish_validation": _finish_validation,
    "merge": _merge,
    "integrity": _integrity,
    "cases": _cases,
    "feedback": _feedback,
    "notify_regions": _notify_regions,
    "aduan_outcomes": _aduan_outcomes,
    "rank_and_audit": _rank_and_audit,
    "approval": _approval,
    "publish": _publish,
    "notify_programs": _notify_programs,
}
