"""Check a submission's manifest.json against its folder (contract section 1).

A bad manifest is MANIFEST_INVALID; whether the files match their listed sha256 (CHECKSUM_MISMATCH)
is decided by the caller on the bytes it kept (`dtsen.ingest.rawstore`), so the bytes checked are
the bytes staged. Each problem is told twice: in English for operators and in Indonesian for the
region; neither quotes file contents.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Collection, Mapping
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
FIX = " Perbaiki manifest.json lalu kirim ulang sebagai kiriman baru (submission_id baru)."


@dataclass
class ManifestCheck:
    code: str | None = None  # None = the manifest is fine (checksums are checked on the kept bytes)
    detail: str = ""  # for operators
    pesan: str = ""  # for the region
    manifest: dict | None = None
    submitted_at: dt.datetime | None = None
    listed: dict[str, str] = field(default_factory=dict)  # data file name -> sha256 it should have


def fileset_sha256(sha256_by_name: Mapping[str, str]) -> str:
    """Identity of a submission's bytes: equal for byte-identical resubmissions."""
    joined = "\n".join(f"{name}:{digest}" for name, digest in sorted(sha256_by_name.items()))
    return hashlib.sha256(joined.encode()).hexdigest()


def data_files(landing_root: Path, submission: SubmissionDir) -> dict[str, Path]:
    """The data files of the submission's source present in its folder (regular, inside the landing zone)."""
    found = {}
    for spec in SUBMISSION_FILES[submission.source]:
        path = submission_file(landing_root, submission, spec.file_name)
        if path is not None:
            found[spec.file_name] = path
    return found


class DuplicateKey(ValueError):
    """A JSON object of the manifest names the same key twice (json.loads would keep the last)."""


def no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(key)
        seen[key] = value
    return seen


def _invalid(detail: str, pesan: str, manifest: dict | None = None) -> ManifestCheck:
    return ManifestCheck(code="MANIFEST_INVALID", detail=detail, pesan=pesan + FIX, manifest=manifest)


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
        return _invalid(
            "manifest.json is missing (or is a link out of the landing zone)",
            "manifest.json tidak ada di folder kiriman.",
        )
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        return _invalid("manifest.json is larger than 1 MiB", "manifest.json lebih besar dari 1 MiB.")
    try:
        # a key given twice is refused, never resolved by its last entry: "files" listing a file
        # first with a wrong checksum and then with the right one must not pass
        manifest = json.loads(path.read_bytes().decode("utf-8-sig"), object_pairs_hook=no_duplicate_keys)
    except DuplicateKey as exc:
        name = shown(str(exc))
        return _invalid(
            f"manifest.json gives the key {name!r} more than once in one object",
            f"manifest.json mencantumkan {name} lebih dari sekali dalam satu bagian (misalnya satu berkas "
            "dua kali di files); setiap nama hanya boleh muncul sekali.",
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _invalid(
            f"manifest.json is not valid UTF-8 JSON ({type(exc).__name__})",
            "manifest.json bukan JSON UTF-8 yang sah.",
        )
    if not isinstance(manifest, dict):
        return _invalid(
            "manifest.json is not a JSON object", "manifest.json harus berupa objek JSON { ... }."
        )
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        listed = ", ".join(missing)
        return _invalid(f"manifest.json lacks {listed}", f"manifest.json tidak memuat: {listed}.", manifest)
    if manifest["source"] != submission.source:
        return _invalid(
            f"manifest source is not {submission.source!r}, the folder it is in",
            f"source di manifest.json bukan {submission.source!r}, padahal kiriman ada di folder "
            f"{submission.source}/.",
            manifest,
        )
    if manifest["submission_id"] != submission.submission_id:
        return _invalid(
            "manifest submission_id differs from its folder name",
            "submission_id di manifest.json berbeda dengan nama folder kiriman.",
            manifest,
        )
    if manifest["round_id"] != submission.round_id:
        return _invalid(
            f"manifest round_id differs from the round folder {submission.round_id}",
            f"round_id di manifest.json berbeda dengan folder putaran {submission.round_id}.",
            manifest,
        )
    submitted_at = _parse_submitted_at(manifest["submitted_at"])
    if submitted_at is None:
        return _invalid(
            "submitted_at is not an ISO-8601 timestamp with a UTC offset",
            "submitted_at harus berupa waktu ISO-8601 dengan zona waktu, mis. 2026-02-14T09:30:00+07:00.",
            manifest,
        )
    if not isinstance(manifest["submitted_by"], str) or not manifest["submitted_by"].strip():
        return _invalid("submitted_by is empty", "submitted_by kosong.", manifest)
    kode = manifest["kode_wilayah"]
    if submission.source == "pemda":
        if not (isinstance(kode, str) and re.fullmatch(r"[0-9]{4}", kode)):
            return _invalid(
                "a pemda manifest needs the 4-digit regency code in kode_wilayah",
                "kode_wilayah di manifest.json harus kode kabupaten/kota 4 digit.",
                manifest,
            )
        if known_regencies is not None and kode not in known_regencies:
            return _invalid(
                f"kode_wilayah {kode} is not a regency/city of Kepmendagri 2025",
                f"kode_wilayah {kode} bukan kode kabupaten/kota menurut Kepmendagri 300.2.2-2138/2025.",
                manifest,
            )
    elif not (isinstance(kode, str) and re.fullmatch(r"([0-9]{2})?", kode)):
        return _invalid(
            "kode_wilayah of a bps/kemensos/aduan manifest must be empty or a province code",
            'kode_wilayah di manifest.json harus kosong ("") atau kode provinsi 2 digit.',
            manifest,
        )

    listed = manifest["files"]
    if not isinstance(listed, dict) or not listed:
        return _invalid(
            "files must be a non-empty object of file name to sha256",
            "files di manifest.json harus berisi nama berkas dan checksum SHA-256-nya.",
            manifest,
        )
    expected = {spec.file_name for spec in SUBMISSION_FILES[submission.source]}
    unknown = sorted(set(listed) - expected)
    if unknown:
        names = shown(", ".join(unknown))
        return _invalid(
            f"files lists names this source does not deliver: {names}",
            f"files di manifest.json memuat berkas yang tidak dikenal untuk sumber ini: {names}.",
            manifest,
        )
    bad_digest = sorted(
        name for name, digest in listed.items() if not (isinstance(digest, str) and SHA256_RE.match(digest))
    )
    if bad_digest:
        names = ", ".join(bad_digest)
        return _invalid(
            f"files has a value that is not a sha256 hex digest for {names}",
            f"Checksum untuk {names} di manifest.json bukan SHA-256 (64 karakter heksadesimal).",
            manifest,
        )
    present = data_files(landing_root, submission)
    unlisted = sorted(set(present) - set(listed))
    if unlisted:
        names = ", ".join(unlisted)
        return _invalid(
            f"{names} is in the folder but not in the manifest",
            f"{names} ada di folder kiriman tetapi tidak tercantum di files pada manifest.json.",
            manifest,
        )
    absent = sorted(set(listed) - set(present))
    if absent:
        names = ", ".join(absent)
        return _invalid(
            f"manifest lists {names} but the folder has no such regular file",
            f"manifest.json mencantumkan {names}, tetapi berkas itu tidak ada di folder kiriman.",
            manifest,
        )
    return ManifestCheck(
        manifest=manifest, submitted_at=submitted_at, listed={k: v.lower() for k, v in listed.items()}
    )
