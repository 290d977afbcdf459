"""Files the pipeline writes (raw copies, feedback, published versions): written next to their final
name under a name unique to the writer, then renamed into place; readable by the service's user and
group only; and a full disk is reported to operators in plain words (which path, how much space),
with nothing half-written left behind.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o640  # personal data (raw files, versions) and regions' feedback: never world-readable
READ_ONLY_MODE = 0o440  # kept raw copies: evidence, never rewritten
DIR_MODE = 0o750
_FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageFull(OSError):
    """The disk (or quota) holding `path` is full; the message says what was needed."""

    def __init__(self, path: Path, needed_bytes: int | None):
        self.path = path
        self.needed_bytes = needed_bytes
        free = _free_bytes(path)
        needed = f"at least {needed_bytes:,} more bytes" if needed_bytes else "more space"
        super().__init__(
            errno.ENOSPC,
            f"no space left writing {path}: it needed {needed}, "
            f"{'unknown' if free is None else f'{free:,}'} bytes are free there; "
            "free space (or raise the quota) and rerun the step",
        )


def _free_bytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(candidate).free
    return None


def make_dirs(path: Path) -> Path:
    """`path` and its missing parents, created group-readable only (existing ones are left as they are)."""
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another writer made it first
            folder.mkdir(mode=DIR_MODE)
            folder.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def temporary_name(path: Path) -> Path:
    """A sibling name no other writer uses: two runs of one step never share a temporary file."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.partial")


class _CountingWriter:
    def __init__(self, fh: BinaryIO):
        self._fh = fh
        self.written = 0

    def write(self, data: bytes) -> int:
        n = self._fh.write(data)
        self.written += len(data)
        return n


@contextlib.contextmanager
def atomic_output(
    path: Path, mode: int = FILE_MODE, *, place: Callable[[Path], None] | None = None
) -> Iterator[_CountingWriter]:
    """Write `path` through a temporary sibling, flushed and renamed onto `path` on success.

    `place(partial)` replaces the final rename when the destination is only known once the bytes
    are written (content-addressed files). A `path` that already holds exactly these bytes is left as
    it is, its time included: a rerun rewrites nothing a reader may already have. On any failure the
    temporary file is removed; a full disk raises StorageFull.
    """
    make_dirs(path.parent)
    partial = temporary_name(path)
    writer = None
    try:
        with open(partial, "xb") as fh:
            os.chmod(partial, mode)  # the open descriptor keeps writing, whatever the mode
            writer = _CountingWriter(fh)
            yield writer
            fh.flush()
            os.fsync(fh.fileno())
        if place is None:
            if not _same_bytes(partial, path):
                os.replace(partial, path)
        else:
            place(partial)
    except OSError as exc:
        _remove(partial)
        if exc.errno in _FULL and not isinstance(exc, StorageFull):
            raise StorageFull(path, None if writer is None else writer.written + 1) from exc
        raise
    except BaseException:
        _remove(partial)
        raise
    _remove(partial)  # `place` may have found the bytes already there


def sweep_partials(folder: Path, older_than_seconds: float = 3600.0) -> int:
    """Remove temporary files a killed writer left in `folder` (a live writer's are younger)."""
    import time

    removed = 0
    if folder.is_dir():
        cutoff = time.time() - older_than_seconds
        for leftover in folder.glob(".*.partial"):
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
    return removed


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """`path` holds `data` afterwards, or is as it was before (a full disk raises StorageFull)."""
    try:
        with atomic_output(path, mode) as out:
            out.write(data)
    except StorageFull as full:
        raise StorageFull(path, len(data)) from full.__cause__


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and filecmp.cmp(a, b, shallow=False)
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def file_sha256(path: Path) -> tuple[str, int]:
    """(sha256 hex, size) of a file, streamed."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
