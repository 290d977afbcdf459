"""The texts of every notification: to program owners (a published version), to regions (their
feedback), to data ops (a failed task, a blocked audit). Built from manifests, ringkasan.json and
counts only; `redact` masks any NIK-like digit run in text that came from an exception.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo

from dtsen.errors import database_error_text
from dtsen.notify.subscribers import Subscribers

_LONG_DIGITS = re.compile(r"\d{12,}")
WIB = ZoneInfo("Asia/Jakarta")
_BULAN = (
    "Januari", "Februari", "Maret", "April", "Mei", "Juni",
    "Juli", "Agustus", "September", "Oktober", "November", "Desember",
)  # fmt: skip
SHARE = "di folder publikasi DTSEN"  # where a relative location is found when no base URL is configured


RESEND_MARK = "[kirim ulang]"  # in the subject of a resend, after the [DTSEN] that mail rules file by
RESEND_HEADER = "X-DTSEN-Resend"


@dataclass(frozen=True)
class Email:
    to: tuple[str, ...]
    subject: str
    body: str  # plain text; senders wrap it for HTML transports
    delivery_id: str | None = None  # the same on every retry: receivers can drop a duplicate
    resend: bool = False  # an earlier copy may have arrived (its sending's outcome was never recorded)

    def headers(self) -> dict[str, str]:
        """Message-ID and X-DTSEN-Delivery-Id, both stable for one delivery (RFC 5322 Message-ID), and
        on a resend X-DTSEN-Resend (a header mail rules can match)."""
        if not self.delivery_id:
            return {}
        headers = {"Message-ID": f"<{self.delivery_id}@dtsen>", "X-DTSEN-Delivery-Id": self.delivery_id}
        if self.resend:
            headers[RESEND_HEADER] = "yes"
        return headers

    def as_resend(self) -> Email:
        """The same notice, sent again because the outcome of an earlier sending is unknown (the
        notifier stopped between the mail server's acceptance and recording it): same delivery id
        and Message-ID, marked in the subject, a header and the body's first lines, so a recipient
        who has the first copy sees that this one repeats it."""
        prefix = "[DTSEN] " if self.subject.startswith("[DTSEN] ") else ""
        note = (
            f"{RESEND_MARK} Pesan ini dikirim ulang setelah pengiriman sebelumnya terputus. Jika Anda "
            f"sudah menerima pesan dengan ID pengiriman {self.delivery_id}, abaikan salinan ini.\n"
            f"(Resent after an interrupted sending: if you already have the message with delivery id "
            f"{self.delivery_id}, ignore this copy.)\n\n"
        )
        return replace(
            self,
            subject=f"{prefix}{RESEND_MARK} {self.subject.removeprefix(prefix)}",
            body=note + self.body,
            resend=True,
        )


def redact(text: str, limit: int = 500) -> str:
    """Mask digit runs long enough to be a NIK or KK number (last 4 kept) and cap the length."""
    masked = _LONG_DIGITS.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], text)
    return masked if len(masked) <= limit else masked[:limit] + " [...]"


def angka(n: int) -> str:
    """A count written the Indonesian way: a period groups thousands (1.908)."""
    return f"{n:,}".replace(",", ".")


def waktu_wib(moment: str | dt.datetime) -> str:
    """An instant in Western Indonesian Time, written the Indonesian way: 5 Desember 2026 pukul 01.12 WIB
    (a naive time is taken as UTC, as the warehouse and the manifests keep it)."""
    when = dt.datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    local = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).astimezone(WIB)
    return f"{local.day} {_BULAN[local.month - 1]} {local.year} pukul {local:%H.%M} WIB"


def version_location(subscribers: Subscribers, version_path: str, version: int) -> str:
    base = subscribers.files_base_url.rstrip("/")
    return f"{base}/{version}/" if base else f"{version_path}/"


def program_payload(manifest: dict, program: str, location: str) -> dict:
    """What a program owner is told (email and webhook alike)."""
    counts = manifest["programs"][program]
    files = {k: v for k, v in manifest["files"].items() if k == f"programs/{program}.parquet" or "/" not in k}
    return {
        "event": "dtsen.version.published",
        "program": program,
        "version": manifest["version"],
        "round_id": manifest["round_id"],
        "published_at": manifest["published_at"],
        "previous_version": manifest.get("previous_version"),
        "recipients": counts["recipients"],
        "added": counts["added"],
        "removed": counts["removed"],
        "location": location,
        "files": files,
        "ranking_model": manifest.get("ranking_model"),
    }


def program_email(payload: dict, to: tuple[str, ...]) -> Email:
    location = payload["location"]
    if "://" not in location:  # a path on the pipeline's machine: name the version's folder in the share
        location = f"versions/{payload['version']}/ ({SHARE})"
    lines = [
        f"DTSEN versi {payload['version']} (putaran {payload['round_id']}) telah terbit pada "
        f"{waktu_wib(payload['published_at'])}.",
        "",
        f"Program {payload['program']}:",
        f"  penerima      {angka(payload['recipients']):>10}",
        f"  ditambahkan   {angka(payload['added']):>10}",
        f"  dikeluarkan   {angka(payload['removed']):>10}",
        f"  (dibandingkan versi {payload['previous_version'] or '-'})",
        "",
        f"Berkas: {location}",
        "Checksum SHA-256 (periksa sebelum digunakan):",
        *[f"  {name}  {digest}" for name, digest in sorted(payload["files"].items())],
        "",
        "Pesan ini dikirim otomatis oleh pipeline DTSEN; data pribadi tidak pernah dikirim lewat email.",
    ]
    subject = f"[DTSEN] Versi {payload['version']} terbit: {payload['program']} {angka(payload['recipients'])} penerima"
    return Email(to, subject, "\n".join(lines))


def feedback_location(subscribers: Subscribers, folder: Path, file_name: str) -> str:
    """Where a region finds a file of its feedback: under the feedback share's base URL, or else the
    path under the publication's feedback folder (never a path on the pipeline's own machine)."""
    relative = f"{folder.parent.name}/{folder.name}/{file_name}"  # <round>/<submission>/<file>
    base = subscribers.feedback_base_url.rstrip("/")
    return f"{base}/{relative}" if base else f"feedback/{relative} ({SHARE})"


def region_emails(round_id: str, feedback: list[dict], subscribers: Subscribers) -> list[tuple[str, Email]]:
    """(regency, email): one per regency, summarising each of its pemda submissions' ringkasan.json."""
    by_regency: dict[str, list[dict]] = {}
    for item in feedback:
        if item.get("source") == "pemda" and item.get("kode_wilayah"):
            by_regency.setdefault(item["kode_wilayah"][:4], []).append(item)
    emails = []
    for regency, items in sorted(by_regency.items()):
        to = subscribers.region_emails(regency)
        if not to:
            continue
        lines = [
            f"Hasil pemrosesan kiriman data DTSEN putaran {round_id} untuk kabupaten/kota {regency}:",
            "",
        ]
        for item in items:
            folder = Path(item["path"])
            summary = json.loads((folder / "ringkasan.json").read_text(encoding="utf-8"))
            lines.append(f"Kiriman {summary['submission_id']}: {summary['status']}")
            for name, rows in sorted(summary.get("rows", {}).items()):
                lines.append(
                    f"  {name}: diterima {angka(rows['received'])}, masuk DTSEN {angka(rows['merged'])}, "
                    f"ditolak {angka(rows['rejected'])}"
                )
            for code, n in sorted(summary.get("reasons", {}).items()):
                lines.append(f"  {angka(n):>6}  {code}: {summary.get('pesan', {}).get(code, '')}")
            lines.append(
                f"  Rincian baris yang ditolak: {feedback_location(subscribers, folder, 'ditolak.csv')}"
            )
            lines.append("")
        lines.append("Perbaiki baris yang ditolak dan kirimkan kembali pada putaran berikutnya.")
        emails.append(
            (regency, Email(to, f"[DTSEN] Hasil kiriman putaran {round_id} - {regency}", "\n".join(lines)))
        )
    return emails


def task_failure_email(
    to: tuple[str, ...],
    dag_id: str,
    task_id: str,
    run_id: str,
    try_number: int,
    exception: BaseException | str | None,
    log_url: str | None = None,
) -> Email:
    kind = type(exception).__name__ if isinstance(exception, BaseException) else "error"
    # a database error by its condition only: its DETAIL quotes keys and rows, not only digits
    text = (
        redact(database_error_text(exception) if isinstance(exception, BaseException) else str(exception))
        if exception is not None
        else "(no exception recorded)"
    )
    lines = [
        f"Task {dag_id}.{task_id} failed (run {run_id}, try {try_number}).",
        f"{kind}: {text}",
        "",
        f"Log: {log_url}" if log_url else "See the task log in the Airflow UI.",
        "Every step of a round is idempotent: after fixing the cause, clear the failed task to rerun it.",
    ]
    return Email(to, f"[DTSEN] FAILED {dag_id}.{task_id}", "\n".join(lines))


def audit_blocked_email(to: tuple[str, ...], round_id: str, version: int, report: list[str]) -> Email:
    lines = [
        f"The candidate version {version} of round {round_id} failed its audit and was NOT published;",
        "the current version stays current. Audit report:",
        "",
        *report,
        "",
        "If the drift is expected, approve it: trigger dtsen_update_round again with approve_drift and a reason,",
        f"or run `dtsen approve --version {version} --by NAME --reason TEXT` and then `dtsen publish --round {round_id}`.",
    ]
    return Email(to, f"[DTSEN] Audit blocked version {version} (round {round_id})", "\n".join(lines))


def cases_overdue_email(to: tuple[str, ...], round_id: str, share: float, regions: list[dict]) -> Email:
    """Data ops: regencies whose field teams let more than `share` of their due cases expire."""
    lines = [
        f"Round {round_id}: in {len(regions)} regencies more than {share:.0%} of the verification cases due",
        "expired without a field result (cases due before the round's reference date):",
        "",
        *(f"  {r['kode']}: {r['expired']} of {r['due']} expired ({r['share']:.0%})" for r in regions),
        "",
        "The cases per regency, origin and round are on the cockpit's Cases page; `dtsen cases list --region",
        "CODE --state EXPIRED` lists them (keys masked). An expired flag is not raised again until it begins anew.",
    ]
    return Email(
        to,
        f"[DTSEN] Verification cases overdue in {len(regions)} regencies (round {round_id})",
        "\n".join(lines),
    )


def approval_waiting_email(
    to: tuple[str, ...], blocked, ui_link: str | None, cockpit_link: str | None = None
) -> Email:
    """Data ops: a candidate blocked on approvable checks waits for a decision in the Airflow UI."""
    lines = [
        f"The candidate version {blocked.version} of round {blocked.round_id} failed only checks an admin may",
        "accept, and waits for a decision. Until someone approves it, the current version stays current.",
        "",
        *(
            f"  failed: {c['rule']}: {c['description']} (observed {c['observed']})"
            for c in blocked.failed_checks
        ),
        *(f"  - {line}" for line in blocked.accepting()),
        "",
        f"Approve or reject it here: {ui_link}"
        if ui_link
        else "Approve or reject it in the Airflow UI (Required Actions).",
    ]
    if cockpit_link:
        lines.append(f"The whole audit: {cockpit_link}")
    return Email(
        to,
        f"[DTSEN] Approval needed for version {blocked.version} (round {blocked.round_id})",
        "\n".join(lines),
    )


def extract_held_email(to: tuple[str, ...], round_id: str, review, ui_link: str | None) -> Email:
    """Data ops: a Dukcapil extract is held by the plausibility check and the round waits (counts and
    regency codes only)."""
    lines = [
        f"Round {round_id} stopped before validation: the Dukcapil extract of {review.snapshot_date} was not",
        f"applied, because {review.why}.",
        "Nothing of it reached the reference; no registry record was changed.",
        "",
        f"Decide here: {ui_link}"
        if ui_link
        else f"Decide with `dtsen decide-extract --date {review.snapshot_date} --apply|--keep-reference "
        "--by NAME --reason TEXT`, then run the round again.",
    ]
    return Email(
        to, f"[DTSEN] Dukcapil extract {review.snapshot_date} held: round {round_id} waits", "\n".join(lines)
    )


def extract_conflicts_email(
    to: tuple[str, ...], snapshot_date, conflicting: int, lines: int, first_lines: list[int]
) -> Email:
    """Data ops: the Dukcapil extract contradicts itself on some NIKs (counts and line numbers only)."""
    shown = ", ".join(str(n) for n in first_lines) + (" ..." if conflicting > len(first_lines) else "")
    body = "\n".join(
        [
            f"The Dukcapil extract of {snapshot_date} lists {conflicting} NIK(s) more than once with different",
            f"content ({lines} lines). The extract contradicts itself on them, so neither line was taken:",
            "their reference records are kept as they were, and the regions' rows for them are held",
            "(NIK_DUKCAPIL_CONFLICT: the region is told it is not its error).",
            "",
            f"Ask Dukcapil to correct these records. The first line of each in penduduk.csv: {shown}",
        ]
    )
    return Email(
        to,
        f"[DTSEN] Dukcapil extract {snapshot_date}: {conflicting} NIK(s) listed twice with different content",
        body,
    )
