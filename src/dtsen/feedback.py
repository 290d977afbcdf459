"""Feedback to each submission (contract section 3): ringkasan.json and ditolak.csv.

`<publish_root>/feedback/<round_id>/<submission_id>/`, written once a submission's outcome is final:
refused (REJECTED), or merged. Before the merge nothing is written, so no report ever says "merged"
for rows that were not. ditolak.csv is produced by PostgreSQL (COPY ... TO STDOUT) and streamed to
disk, so a submission with millions of rejected rows needs no memory; it lists at most
`DTSEN_FEEDBACK_MAX_ROWS_PER_REASON` rows per reason, while ringkasan.json counts every row. Keys are
masked to their last 4 digits. Files are written under a name unique to the writer and renamed into
place, so a region never reads a half-written report and two runs never collide.

A report is written once: a region may already have read it, so a rerun of the round (even after
retention dropped the staged rows its keys were read from) leaves it as it is. The warehouse keeps each
report's ringkasan; a submission or refused entry with a kept ringkasan is reported already.

Counting: `rows` counts data rows (blank lines skipped) per file, also for a file or submission
refused whole; `reasons` counts rows per reason code (so a whole-submission refusal counts each of its
rows once; a refusal that read no rows counts 0).

Extensions to the contract (additive): ditolak.csv carries both `nik` and `no_kk` (masked) because a
pemda submission mixes member and family rows; a file refused whole appears once with an empty
`line` and a message saying exactly what is wrong (which line, which column); a NIK_NOT_IN_DUKCAPIL /
NIK_MISMATCH message may end with a NIK-repair suggestion (masked, with the positions of the differing
digits). ringkasan.json adds `pesan` (the Indonesian text of each reason code used), `keterangan`
(why a whole submission was refused) and, for a DUPLICATE_SUBMISSION, `duplikat_dari` (the submission
and round whose processing its rows were part of). Landing entries that could not be processed as submissions
(`ingest.refused_entry`) get the same two files under `feedback/<round_id>/~refused/<name>/`, with a
`folder` key naming the entry.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from dtsen.config import settings
from dtsen.contract import REASON_BY_CODE
from dtsen.integrity.splits import feedback_notes
from dtsen.notify.messages import angka
from dtsen.progress import Progress, timed
from dtsen.sqlfiles import copy_csv, statements
from dtsen.storage import atomic_write, sweep_partials

log = logging.getLogger(__name__)

DITOLAK_COLUMNS = ("file", "line", "nik", "no_kk", "reason", "field", "message")
FINAL = ("REJECTED", "MERGED")


@dataclass
class FeedbackReport:
    submission_pk: int | None  # None for a refused landing entry
    path: Path
    status: str
    rejected_rows: int  # rows listed in ditolak.csv (0 when written before)
    refused_pk: int | None = None
    already: bool = False  # written by an earlier run and left as it was


def _kept_report(
    folder: Path, ringkasan: dict | None, submission_pk: int | None, refused_pk: int | None = None
) -> FeedbackReport | None:
    """The report an earlier run wrote, if there is one: it is never written again."""
    if ringkasan is None:
        return None
    missing = [name for name in ("ringkasan.json", "ditolak.csv") if not (folder / name).exists()]
    if missing:
        # written and recorded, then removed from disk: rewriting it could change what the region read
        log.warning("feedback %s was written before but %s is gone; not written again", folder, missing)
    return FeedbackReport(submission_pk, folder, ringkasan.get("status", ""), 0, refused_pk, already=True)


def feedback_dir(publish_root: Path, round_id: str, name: str) -> Path:
    return publish_root / "feedback" / round_id / name


def rows_per_reason(
    row_reasons: dict[str, int], status: str, reason_code: str | None, received: int
) -> dict[str, int]:
    """Rows per reason code of a submission: its row-level reasons, and for a submission refused whole
    (before any row-level rule ran) every row it sent, under the submission's code."""
    if status == "REJECTED" and reason_code and reason_code not in row_reasons:
        return {**row_reasons, reason_code: received}
    return dict(row_reasons)


def _csv_field(value: object) -> str:
    text = "" if value is None else str(value)
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n\r') else text


def _ringkasan(path: Path, document: dict) -> None:
    atomic_write(path, json.dumps(document, indent=2, ensure_ascii=False).encode())


def write_feedback(
    conn: psycopg.Connection, submission_pk: int, publish_root: Path, max_rows_per_reason: int | None = None
) -> FeedbackReport | None:
    """Write a submission's feedback if its outcome is final; None while it still awaits the merge."""
    # the row stays locked to the caller's commit: a second run at the same time waits, then finds
    # the report kept (written once), instead of writing it again beside the first
    round_seq, round_id, submission_id, status, reason_code, kept = conn.execute(
        "SELECT s.round_seq, r.round_id, s.submission_id, s.status, s.reason_code, s.ringkasan "
        "FROM ingest.submission s JOIN ingest.round r USING (round_seq) WHERE s.submission_pk = %s "
        "FOR UPDATE OF s",
        (submission_pk,),
    ).fetchone()
    if status not in FINAL:
        return None
    folder = feedback_dir(publish_root, round_id, submission_id)
    if (report := _kept_report(folder, kept, submission_pk)) is not None:
        return report
    cap = settings().feedback_max_rows_per_reason if max_rows_per_reason is None else max_rows_per_reason
    queries = statements("feedback/feedback.sql")
    params = {"pk": submission_pk, "round_seq": round_seq, "cap": cap}
    sweep_partials(folder)

    written_rows = copy_csv(conn, queries["rejected_rows"], params, folder / "ditolak.csv")

    rows, rejected_total = {}, 0
    for file_name, received, rejected in conn.execute(queries["file_counts"], params).fetchall():
        if status == "REJECTED":
            rejected = received  # nothing of a refused submission is merged
        rows[file_name] = {"received": received, "merged": received - rejected, "rejected": rejected}
        rejected_total += rejected
    reasons = rows_per_reason(
        dict(conn.execute(queries["reason_counts"], params).fetchall()),
        status,
        reason_code,
        sum(r["received"] for r in rows.values()),
    )
    warnings = [
        f"{name}: {w}"
        for name, ws in conn.execute(
            "SELECT file_name, warnings FROM ingest.submission_file WHERE submission_pk = %s ORDER BY file_name",
            (submission_pk,),
        )
        for w in ws
    ]
    for code, count in conn.execute(queries["rows_per_reason"], params).fetchall():
        if count > cap:
            warnings.append(
                f"ditolak.csv memuat {angka(cap)} dari {angka(count)} baris yang ditolak dengan alasan {code}; "
                "semua baris tetap dihitung di ringkasan ini"
            )
    if status == "REJECTED":
        summary_status = "REJECTED"
    elif rejected_total:
        summary_status = "PARTIAL"
    else:
        summary_status = "MERGED"
    sub_pesan, source, kode_kabupaten, submitted_by = conn.execute(
        "SELECT pesan, source, kode_wilayah, submitted_by FROM ingest.submission WHERE submission_pk = %s",
        (submission_pk,),
    ).fetchone()
    # the round's integrity flags for this region's villages and this account (after the merge only)
    integritas = (
        feedback_notes(conn, round_seq, kode_kabupaten, submitted_by)
        if source == "pemda" and status != "REJECTED"
        else []
    )
    warnings += [note["pesan"] for note in integritas]
    document = {
        "submission_id": submission_id,
        "round_id": round_id,
        "status": summary_status,
        "rows": rows,
        "reasons": dict(sorted(reasons.items())),
        "warnings": warnings,
        "pesan": {code: REASON_BY_CODE[code].pesan for code in sorted(reasons)},
        "integritas": integritas,
        "keterangan": (sub_pesan or REASON_BY_CODE[reason_code].pesan)
        if status == "REJECTED" and reason_code
        else "",
    }
    if reason_code == "DUPLICATE_SUBMISSION":
        # which submission's processing these rows were part of (additive to the contract)
        original = conn.execute(
            "SELECT o.submission_id, r.round_id FROM ingest.submission s "
            "JOIN ingest.submission o ON o.submission_pk = s.duplicate_of JOIN ingest.round r "
            "ON r.round_seq = o.round_seq WHERE s.submission_pk = %s",
            (submission_pk,),
        ).fetchone()
        if original is not None:
            document["duplikat_dari"] = {"submission_id": original[0], "round_id": original[1]}
    _ringkasan(folder / "ringkasan.json", document)
    # kept in the warehouse too: the cockpit reads a round's outcome there, not from files on disk
    conn.execute(
        "UPDATE ingest.submission SET ringkasan = %s WHERE submission_pk = %s",
        (Jsonb(document), submission_pk),
    )
    return FeedbackReport(submission_pk, folder, summary_status, written_rows)


def write_refused_feedback(conn: psycopg.Connection, refused_pk: int, publish_root: Path) -> FeedbackReport:
    """ringkasan.json and ditolak.csv of a landing entry that could not be processed as a submission."""
    round_id, entry, code, pesan, folder_name, rows, kept = conn.execute(
        "SELECT r.round_id, e.entry, e.reason_code, e.pesan, e.feedback_dir, e.rows, e.ringkasan "
        "FROM ingest.refused_entry e JOIN ingest.round r USING (round_seq) WHERE e.refused_pk = %s "
        "FOR UPDATE OF e",  # as a submission's: one writer at a time
        (refused_pk,),
    ).fetchone()
    folder = feedback_dir(publish_root, round_id, folder_name)
    if (report := _kept_report(folder, kept, None, refused_pk)) is not None:
        return report
    lines = [",".join(DITOLAK_COLUMNS)]
    for file_name in sorted(rows) or [""]:
        lines.append(",".join(_csv_field(v) for v in (file_name, "", "", "", code, "", pesan)))
    atomic_write(folder / "ditolak.csv", ("\n".join(lines) + "\n").encode())
    document = {
        "submission_id": entry.rsplit("/", 1)[-1],
        "folder": entry,
        "round_id": round_id,
        "status": "REJECTED",
        "rows": {name: {"received": n, "merged": 0, "rejected": n} for name, n in sorted(rows.items())},
        "reasons": {code: sum(rows.values())},
        "warnings": [],
        "pesan": {code: REASON_BY_CODE[code].pesan},
        "keterangan": pesan,
    }
    _ringkasan(folder / "ringkasan.json", document)
    conn.execute(
        "UPDATE ingest.refused_entry SET ringkasan = %s WHERE refused_pk = %s", (Jsonb(document), refused_pk)
    )
    return FeedbackReport(None, folder, "REJECTED", len(lines) - 1, refused_pk)


def write_round_feedback(
    conn: psycopg.Connection, round_seq: int, publish_root: Path
) -> list[FeedbackReport]:
    """Feedback of every submission of the round whose outcome is final, and of every refused entry."""
    reports = []
    submissions = conn.execute(
        "SELECT submission_pk FROM ingest.submission WHERE round_seq = %s ORDER BY submission_pk",
        (round_seq,),
    ).fetchall()
    refused = conn.execute(
        "SELECT refused_pk FROM ingest.refused_entry WHERE round_seq = %s ORDER BY refused_pk", (round_seq,)
    ).fetchall()
    # one line per report (its rows: those ditolak.csv lists), in the task log and the CLI
    progress = Progress(
        f"feedback of round #{round_seq}",
        [f"submission #{pk}" for (pk,) in submissions] + [f"refused entry #{pk}" for (pk,) in refused],
    )
    for (pk,) in submissions:
        with timed(progress, f"submission #{pk}") as part:
            report = write_feedback(conn, pk, publish_root)
            part.rows = report.rejected_rows if report else None
        if report is not None:
            reports.append(report)
    for (pk,) in refused:
        with timed(progress, f"refused entry #{pk}") as part:
            reports.append(write_refused_feedback(conn, pk, publish_root))
            part.rows = reports[-1].rejected_rows
    return reports
