"""Kept copies of delivered files, content-addressed by sha256, so every rejection can be traced to
its bytes even after the landing zone is cleaned or a source overwrites a file.

A delivered file is read exactly once: its bytes are hashed as they are copied into the store, and
everything later (the manifest's checksum check, COPY) reads the kept copy. A file rewritten in the
landing zone while a round runs can therefore never be staged under another file's checksum.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from dtsen.storage import READ_ONLY_MODE, atomic_output, make_dirs, sweep_partials

CHUNK = 1 << 20


@dataclass(frozen=True)
class Kept:
    path: Path  # the copy in the raw store (read-only, group-readable only)
    sha256: str
    size_bytes: int


def kept_path(raw_root: Path, sha256: str, suffix: str = ".csv") -> Path:
    return raw_root / sha256[:2] / f"{sha256}{suffix}"


def keep(raw_root: Path, source_file: Path, suffix: str = ".csv") -> Kept:
    """Copy `source_file` into the store, hashing the bytes as they are copied; idempotent per content."""
    digest = hashlib.sha256()
    size = 0

    def place(partial: Path) -> None:
        target = make_dirs(kept_path(raw_root, digest.hexdigest(), suffix).parent) / (
            f"{digest.hexdigest()}{suffix}"
        )
        if not target.exists():  # a copy already there holds the same bytes
            os.rename(partial, target)

    incoming = raw_root / "incoming"
    sweep_partials(incoming)  # what a killed run left behind: raw personal data
    with (
        open(source_file, "rb") as src,
        atomic_output(incoming / source_file.name, READ_ONLY_MODE, place=place) as out,
    ):
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    sha = digest.hexdigest()
    return Kept(kept_path(raw_root, sha, suffix), sha, size)
