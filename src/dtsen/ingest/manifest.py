"""Check a submission's manifest.json against its folder and its files (contract section 1).

Outcomes are the contract's submission-level codes: MANIFEST_INVALID (missing, unparsable or
inconsistent manifest) and CHECKSUM_MISMATCH (a listed file's bytes differ from its sha256). The
detail strings are for operators and never quote file contents.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from dtsen.contract import MANIFEST_FILE, SUBMISSION_FILES
from dtsen.ingest.landing import SubmissionDir, shown, submission_file

MAX_MANIFEST_BYTES = 1 << 20
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
REQUIRED_KEYS = (
    "source",
    "submission_id",
    "round_id",
    "kode_wilayah",
    "submitted_at",
    "submitted_by",
    "files",
)
CHUNK = 1 << 20


@dataclass
class ManifestCheck:
    code: str | None = None  # None = manifest fine and every listed file matches
    detail: str = ""
    manifest: dict | None = None
    submitted_at: dt.datetime | None = None
    files: dict[str, Path] = field(default_factory=dict)  # data file name -> path
    sha256: dict[str, str] = field(default_factory=dict)  # actual sha256 of each listed file
    size_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def fileset_sha256(self) -> str:
        """Identity of the submitted bytes: equal for byte-identical resubmissions."""
        joined = "\n".join(f"{name}:{digest}" for name, digest in sorted(self.sha256.items()))
        return hashlib.sha256(joined.encode()).hexdigest()


def file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _invalid(detail: str, manifest: dict | None = None) -> ManifestCheck:
    return ManifestCheck(code="MANIFEST_INVALID", detail=detail, manifest=manifest)


def _parse_submitted_at(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def check_manifest(
    landing_root: Path, submission: SubmissionDir, known_regencies: Collection[str] | None = None
) -> ManifestCheck:
    path = submission_file(landing_root, submission, MANIFEST_FILE)
    if path is None:
        return _invalid("manifest.json is missing (or is a link out of the landing zone)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        return _invalid("manifest.json is larger than 1 MiB")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _invalid(f"manifest.json is not valid UTF-8 JSON ({type(exc).__name__})")
    if not isinstance(manifest, dict):
        return _invalid("manifest.json is not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        return _invalid(f"manifest.json lacks {', '.join(missing)}", manifest)
    if manifest["source"] != submission.source:
        return _invalid(f"manifest source is not {submission.source!r}, the folder it is in", manifest)
    if manifest["submission_id"] != submission.submission_id:
        return _invalid("manifest submission_id differs from its folder name", manifest)
    if manifest["round_id"] != submission.round_id:
        return _invalid(f"manifest round_id differs from the round folder {submission.round_id}", manifest)
    submitted_at = _parse_submitted_at(manifest["submitted_at"])
    if submitted_at is None:
        return _invalid("submitted_at is not an ISO-8601 timestamp with a UTC offset", manifest)
    if not isinstance(manifest["submitted_by"], str) or not manifest["submitted_by"].strip():
        return _invalid("submitted_by is empty", manifest)
    kode = manifest["kode_wilayah"]
    if submission.source == "pemda":
        if not (isinstance(kode, str) and re.fullmatch(r"[0-9]{4}", kode)):
            return _invalid("a pemda manifest needs the 4-digit regency code in kode_wilayah", manifest)
        if known_regencies is not None and kode not in known_regencies:
            return _invalid(f"kode_wilayah {kode} is not a regency/city of Kepmendagri 2025", manifest)
    elif not (isinstance(kode, str) and re.fullmatch(r"([0-9]{2})?", kode)):
        return _invalid("kode_wilayah of a bps/kemensos manifest must be empty or a province code", manifest)

    listed = manifest["files"]
    if not isinstance(listed, dict) or not listed:
        return _invalid("files must be a non-empty object of file name to sha256", manifest)
    expected = {spec.file_name for spec in SUBMISSION_FILES[submission.source]}
    unknown = sorted(set(listed) - expected)
    if unknown:
        return _invalid(
            f"files lists names this source does not deliver: {shown(', '.join(unknown))}", manifest
        )
    bad_digest = sorted(
        name for name, digest in listed.items() if not (isinstance(digest, str) and SHA256_RE.match(digest))
    )
    if bad_digest:
        return _invalid(
            f"files has a value that is not a sha256 hex digest for {', '.join(bad_digest)}", manifest
        )
    unlisted = sorted(
        n for n in expected - set(listed) if submission_file(landing_root, submission, n) is not None
    )
    if unlisted:
        return _invalid(f"{', '.join(unlisted)} is in the folder but not in the manifest", manifest)

    check = ManifestCheck(manifest=manifest, submitted_at=submitted_at)
    mismatched = []
    for name in sorted(listed):
        file_path = submission_file(landing_root, submission, name)
        if file_path is None:
            return _invalid(f"manifest lists {name} but the folder has no such regular file", manifest)
        digest, size = file_sha256(file_path)
        check.files[name], check.sha256[name], check.size_bytes[name] = file_path, digest, size
        if digest.lower() != listed[name].lower():
            mismatched.append(name)
    if mismatched:
        check.code = "CHECKSUM_MISMATCH"
        check.detail = f"sha256 of {', '.join(mismatched)} differs from the manifest"
    return check
