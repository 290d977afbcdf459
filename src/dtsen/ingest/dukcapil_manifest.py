"""The sender's manifest of a Dukcapil extract: `reference/dukcapil/<date>/manifest.json`.

Additive to the data contract (docs/contract-extensions.md): what a submission's manifest is to a
region's files, this is to the civil-registry extract. It names the snapshot date, the extract's
SHA-256 and its number of data rows (the header not counted):

    {"snapshot_date": "2026-12-27", "row_count": 4185,
     "files": {"penduduk.csv": "<sha256 hex>"}, "sent_by": "dukcapil.kemendagri"}

An extract delivered without one is still accepted (senders deliver them so today), guarded by the
plausibility check alone. A manifest that is there but unreadable, or that the extract contradicts
(date, checksum, row count), stops the round: the extract is the authority on who exists and died.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dtsen.contract import DUKCAPIL_FILE, MANIFEST_FILE
from dtsen.ingest.landing import inside, shown
from dtsen.ingest.manifest import DuplicateKey, no_duplicate_keys

MAX_MANIFEST_BYTES = 1 << 20


class ManifestProblem(ValueError):
    """What is wrong with a manifest, in words for data ops (no file contents)."""


class DukcapilManifest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    snapshot_date: dt.date
    row_count: int = Field(ge=0)
    files: dict[str, str]
    sent_by: str | None = None

    @field_validator("files")
    @classmethod
    def _one_extract(cls, files: dict[str, str]) -> dict[str, str]:
        if set(files) != {DUKCAPIL_FILE}:
            raise ValueError(f"files must list exactly {DUKCAPIL_FILE}")
        digest = files[DUKCAPIL_FILE]
        if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise ValueError(f"the checksum of {DUKCAPIL_FILE} is not a SHA-256 hex digest")
        return {DUKCAPIL_FILE: digest.lower()}

    @property
    def sha256(self) -> str:
        return self.files[DUKCAPIL_FILE]


def read_manifest(landing_root: Path, extract: Path, snapshot_date: dt.date) -> DukcapilManifest | None:
    """The manifest beside `extract` (None when the sender sent none); ManifestProblem if it is unusable."""
    candidate = extract.parent / MANIFEST_FILE
    if not candidate.exists() and not candidate.is_symlink():
        return None
    path = inside(landing_root.resolve(), candidate)
    if path is None or not path.is_file():
        raise ManifestProblem("manifest.json is not a regular file inside the landing zone")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestProblem("manifest.json is larger than 1 MiB")
    try:
        # a key given twice is refused: json.loads would keep the last ("wrong checksum, then right one")
        raw = json.loads(path.read_bytes().decode("utf-8-sig"), object_pairs_hook=no_duplicate_keys)
    except DuplicateKey as exc:
        raise ManifestProblem(f"manifest.json repeats the key {shown(str(exc))!r}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestProblem(f"manifest.json is not valid UTF-8 JSON ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise ManifestProblem("manifest.json is not a JSON object")
    try:
        manifest = DukcapilManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}" for e in exc.errors()
        )
        raise ManifestProblem(f"manifest.json is invalid: {problems}") from None
    if manifest.snapshot_date != snapshot_date:
        raise ManifestProblem(
            f"manifest.json names snapshot {manifest.snapshot_date}, but it is in the folder {snapshot_date}"
        )
    return manifest
