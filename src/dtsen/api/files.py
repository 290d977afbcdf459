"""A program's Parquet file as a client may have it: only the columns its field scope gives.

A published file holds every column of the program's recipients (`komponen` among them, which can say
`disabilitas_berat`: health data). A client whose scope is narrower gets a projection: the scope's
columns read row group by row group from the published file (memory: one row group), written to a
file of its own with its own sha256. Projections are kept, keyed by version, program and columns (a
published version never changes), in a directory of this process only (mode 0700, removed at exit):
the published folder is read-only to the API, and a projection is as personal as its source.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Served:
    path: Path
    sha256: str
    columns: tuple[str, ...]


def served_file(published: Path, digest: str, fields: tuple[str, ...], key: str) -> Served | None:
    """The file to send for a scope: the published one (manifest checksum) if the scope covers all its
    columns, else its projection; None if the scope covers none of them. `key` names the published
    file (version and program) in the cache."""
    names = pq.read_schema(published).names
    columns = tuple(c for c in names if c in fields)
    if not columns:
        return None
    if len(columns) == len(names):
        return Served(published, digest, columns)
    folder = _cache() / f"{key}-{'+'.join(columns)}"
    with _lock_for(folder.name):
        kept = sorted(folder.glob("*.parquet")) if folder.exists() else []
        if not kept:
            folder.mkdir(exist_ok=True)
            kept = [_project(published, columns, folder)]
    return Served(kept[0], kept[0].stem, columns)


def _project(published: Path, columns: tuple[str, ...], folder: Path) -> Path:
    """Write the projection into `folder`, named by its sha256 (so a name is its own checksum)."""
    source = pq.ParquetFile(published)
    schema = pa.schema([source.schema_arrow.field(c) for c in columns])  # no source metadata
    partial = folder / f".partial-{os.getpid()}-{threading.get_ident()}"
    with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
        if source.num_row_groups == 0:
            writer.write_table(schema.empty_table())
        for group in range(source.num_row_groups):
            writer.write_table(source.read_row_group(group, columns=list(columns)).cast(schema))
    sha = hashlib.sha256()
    with open(partial, "rb") as fh:
        while block := fh.read(1 << 20):
            sha.update(block)
    final = folder / f"{sha.hexdigest()}.parquet"
    partial.rename(final)
    return final


_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def _lock_for(name: str) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(name, threading.Lock())


@functools.cache
def _cache() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="dtsen-api-files-"))  # 0700, this process's own
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
