"""Publish an audited (or approved) candidate as `versions/<N>/` (contract section 3), atomically.

Files are written into a hidden sibling directory, manifest.json last, flushed to disk, and the
directory is renamed into place: a reader sees either no version N or all of it. A published version
is never rewritten: publishing again returns it, and a directory left by a crash between the rename
and the warehouse's commit is checked against its manifest and adopted, not rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dtsen.ingest.manifest import file_sha256
from dtsen.publish.candidate import PUBLISH_LOCK_KEY
from dtsen.publish.parquet import copy_to_parquet
from dtsen.sqlfiles import statements

log = logging.getLogger(__name__)

PUBLISHABLE = ("AUDITED", "APPROVED")  # may be published now
RELEASED = ("PUBLISHED", "SUPERSEDED")  # published before: publishing again returns them


class PublishError(RuntimeError):
    pass


@dataclass
class PublishSummary:
    version: int
    path: Path
    published_now: bool
    manifest: dict
    file_seconds: dict[str, float] = field(default_factory=dict)
    file_rows: dict[str, int] = field(default_factory=dict)


def version_dir(publish_root: Path, version: int) -> Path:
    return publish_root / "versions" / str(version)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_version_dir(path: Path) -> dict:
    """The manifest of a version directory whose every file matches its recorded sha256."""
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    for relative, digest in manifest["files"].items():
        if file_sha256(path / relative)[0] != digest:
            raise PublishError(f"{path.name}/{relative} does not match its manifest checksum")
    return manifest


def version_files(program_ids: list[str]) -> dict[str, str]:
    queries = statements("publish/files.sql")
    files = {
        "keluarga.parquet": queries["keluarga"],
        "anggota.parquet": queries["anggota"],
        "perubahan.parquet": queries["perubahan"],
    }
    for program in program_ids:
        files[f"programs/{program}.parquet"] = queries["program"]
    return files


def write_version_files(
    conn: psycopg.Connection, version: int, previous: int | None, program_ids: list[str], target: Path
) -> tuple[dict[str, str], dict[str, float], dict[str, int]]:
    checksums, seconds, rows = {}, {}, {}
    for relative, query in version_files(program_ids).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        params = {"version": version, "previous": previous if previous is not None else -1}
        if relative.startswith("programs/"):
            params["program"] = Path(relative).stem
        started = time.perf_counter()
        rows[relative] = copy_to_parquet(conn, query, path, params)
        seconds[relative] = time.perf_counter() - started
        checksums[relative] = file_sha256(path)[0]
        log.debug("version %s: %s, %s rows in %.1f s", version, relative, rows[relative], seconds[relative])
    return checksums, seconds, rows


def publish_version(conn: psycopg.Connection, version: int, publish_root: Path) -> PublishSummary:
    final = version_dir(publish_root, version)
    row = conn.execute(
        "SELECT v.status, v.previous_version, v.counts, v.programs, v.ranking_model, v.manifest, r.round_id, "
        "v.audit, v.approved_by FROM publish.version v JOIN ingest.round r ON r.round_seq = v.round_seq "
        "WHERE v.version = %s",
        (version,),
    ).fetchone()
    if not row:
        raise PublishError(f"version {version} does not exist")
    status, previous, counts, programs, model, stored_manifest, round_id, audit, approved_by = row
    conn.rollback()
    if status in RELEASED:
        return PublishSummary(version, final, False, stored_manifest)
    if status not in PUBLISHABLE:
        raise PublishError(
            f"version {version} is {status}: only an audited or approved candidate is published"
            + (
                " (approve it with `dtsen approve` after reviewing the audit report)"
                if status == "BLOCKED"
                else ""
            )
        )
    if final.exists():
        manifest = verify_version_dir(final)  # a crash after the rename: adopt, never rewrite
        if manifest.get("version") != version:
            raise PublishError(f"{final} holds version {manifest.get('version')}, not {version}")
        summary = PublishSummary(version, final, True, manifest)
    else:
        staging = final.parent / f".incomplete-{version}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            program_ids = sorted(programs)
            checksums, seconds, rows = write_version_files(conn, version, previous, program_ids, staging)
            conn.rollback()
            manifest = {
                "version": version,
                "round_id": round_id,
                "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "previous_version": previous,
                "ranking_model": model,
                "counts": counts,
                "programs": programs,
                "files": checksums,
                "audit": {"success": bool((audit or {}).get("success")), "approved_by": approved_by},
            }
            with open(staging / "manifest.json", "w", encoding="utf-8") as fh:
                json.dump(manifest, fh, indent=2, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            for path in staging.rglob("*.parquet"):
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
            _fsync_dir(staging)
            os.rename(staging, final)  # atomic on one filesystem; fails if the version exists
            _fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        summary = PublishSummary(version, final, True, manifest, seconds, rows)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
        conn.execute(
            "UPDATE publish.version SET status = 'SUPERSEDED' WHERE status = 'PUBLISHED' AND version < %s",
            (version,),
        )
        conn.execute(
            "UPDATE publish.version SET status = 'PUBLISHED', published_at = now(), manifest = %s, path = %s "
            "WHERE version = %s",
            (Jsonb(summary.manifest), str(final), version),
        )
        for program in summary.manifest.get("programs", {}):
            # one view per program for its team: every published version's recipients (filter on version)
            conn.execute(
                sql.SQL(
                    "CREATE OR REPLACE VIEW publish.{} AS SELECT version, nik, no_kk, kode_wilayah, desil, prioritas "
                    "FROM publish.recipient_published WHERE program = {}"
                ).format(sql.Identifier(f"recipient_{program}"), sql.Literal(program))
            )
        conn.execute(
            "UPDATE ingest.round SET status = 'PUBLISHED', published_version = %s WHERE round_id = %s",
            (version, round_id),
        )
    return summary
