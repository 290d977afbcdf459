"""Find a round's submissions and the Dukcapil snapshots in the landing zone, refusing hostile paths.

The landing zone is written by outsiders, so nothing in it is trusted: names must match the
contract's patterns, and a symlink is followed only when it resolves inside the landing root.
Refusals carry a printable, truncated name so an operator can find the entry without the log
becoming an attack vector itself.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from dtsen.contract import DUKCAPIL_DIR, DUKCAPIL_FILE, ROUND_ID_RE, SOURCES, SUBMISSION_ID_RE
from dtsen.errors import DataError

MAX_SHOWN_NAME = 80


@dataclass(frozen=True)
class SubmissionDir:
    round_id: str
    source: str
    submission_id: str
    path: Path  # resolved, inside the landing root


@dataclass(frozen=True)
class DukcapilSnapshotFile:
    snapshot_date: dt.date
    path: Path


@dataclass(frozen=True)
class Refused:
    entry: str  # printable, truncated relative name
    why: str  # for operators (English)
    source: str = ""
    name: str = ""  # the entry's own name, as found (identifies it; never printed unescaped)
    pesan: str = ""  # for the region (Indonesian)
    folder: Path | None = None  # set when it is a folder inside the landing zone (its files may be counted)


BAD_NAME = (
    "submission folder name is not [A-Za-z0-9_.-]{1,64}",
    "Nama folder kiriman tidak sesuai ketentuan (hanya huruf, angka, garis bawah, titik dan tanda "
    "hubung, paling panjang 64 karakter), sehingga kiriman tidak diproses. Kirim ulang dalam folder "
    "bernama submission_id yang sah.",
)
LEAVES_LANDING = (
    "link that leaves the landing zone (or is broken)",
    "Folder kiriman ini berupa tautan (link) ke luar zona pendaratan atau tautan yang rusak, sehingga "
    "tidak dibaca. Salin berkasnya ke dalam folder kiriman lalu kirim ulang.",
)
NOT_A_FOLDER = (
    "not a folder",
    "Di folder sumber ada berkas, bukan folder kiriman. Setiap kiriman berupa folder berisi "
    "manifest.json dan berkas datanya.",
)


@dataclass
class RoundListing:
    round_id: str
    submissions: list[SubmissionDir] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


class LandingError(DataError):
    """The round itself cannot be read (bad round id, missing or escaping folder)."""


def shown(name: str) -> str:
    """A name safe to print: control characters escaped, length capped."""
    text = name.encode("unicode_escape", errors="backslashreplace").decode("ascii")
    return text if len(text) <= MAX_SHOWN_NAME else text[: MAX_SHOWN_NAME - 3] + "..."


def inside(root: Path, path: Path) -> Path | None:
    """The resolved path if it stays inside `root` (following symlinks), else None."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling link, loop
        return None
    return resolved if resolved == root or resolved.is_relative_to(root) else None


def list_round(landing_root: Path, round_id: str) -> RoundListing:
    root = landing_root.resolve()
    if not ROUND_ID_RE.match(round_id):
        raise LandingError(f"round id {shown(round_id)!r} is not of the form YYYY-Qn")
    round_dir = inside(root, root / round_id)
    if round_dir is None or not round_dir.is_dir():
        raise LandingError(f"round folder {round_id} not found in the landing zone")
    listing = RoundListing(round_id)
    for source in SOURCES:
        source_dir = inside(root, round_dir / source)
        if source_dir is None or not source_dir.is_dir():
            continue
        with os.scandir(source_dir) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                rel = f"{round_id}/{source}/{shown(entry.name)}"
                target = inside(root, Path(entry.path))
                if target is None:
                    listing.refused.append(
                        Refused(rel, LEAVES_LANDING[0], source, entry.name, LEAVES_LANDING[1])
                    )
                    continue
                if not target.is_dir():
                    listing.refused.append(Refused(rel, NOT_A_FOLDER[0], source, entry.name, NOT_A_FOLDER[1]))
                    continue
                if not SUBMISSION_ID_RE.match(entry.name):
                    listing.refused.append(Refused(rel, BAD_NAME[0], source, entry.name, BAD_NAME[1], target))
                    continue
                listing.submissions.append(SubmissionDir(round_id, source, entry.name, target))
    return listing


def submission_file(root: Path, submission: SubmissionDir, name: str) -> Path | None:
    """A file of a submission if it is a regular file inside the landing root, else None."""
    candidate = inside(root.resolve(), submission.path / name)
    return candidate if candidate is not None and candidate.is_file() else None


def list_dukcapil_snapshots(landing_root: Path) -> tuple[list[DukcapilSnapshotFile], list[Refused]]:
    root = landing_root.resolve()
    base = inside(root, root.joinpath(*DUKCAPIL_DIR))
    snapshots: list[DukcapilSnapshotFile] = []
    refused: list[Refused] = []
    if base is None or not base.is_dir():
        return snapshots, refused
    with os.scandir(base) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            rel = f"reference/dukcapil/{shown(entry.name)}"
            try:
                snapshot_date = dt.date.fromisoformat(entry.name) if len(entry.name) == 10 else None
            except ValueError:
                snapshot_date = None
            if snapshot_date is None:
                refused.append(Refused(rel, "snapshot folder name is not a YYYY-MM-DD date"))
                continue
            target = inside(root, Path(entry.path) / DUKCAPIL_FILE)
            if target is None or not target.is_file():
                refused.append(Refused(rel, f"no readable {DUKCAPIL_FILE} inside the landing zone"))
                continue
            snapshots.append(DukcapilSnapshotFile(snapshot_date, target))
    return snapshots, refused
