"""Kept copies of delivered files, content-addressed by sha256, so every rejection can be traced to
its bytes even after the landing zone is cleaned or a source overwrites a file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def keep(raw_root: Path, source_file: Path, sha256: str, suffix: str = ".csv") -> Path:
    """Copy the file into the store once (idempotent); returns the kept path."""
    target = raw_root / sha256[:2] / f"{sha256}{suffix}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.copyfile(source_file, partial)
    partial.chmod(0o444)
    os.replace(partial, target)  # atomic: a reader never sees half a file
    return target
