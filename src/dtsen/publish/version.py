"""Publish an audited (or approved) candidate as `versions/<N>/` (contract section 3), atomically.

Files are written into a hidden sibling directory, manifest.json last, flushed to disk, and the
directory is renamed into place: a reader sees either no version N or all of it. A published version
is never rewritten: publishing again returns it, and a directory left by a crash between the rename
and the warehouse's commit is checked against its manifest and adopted, not rewritten.
"""

from __future__ import annotations

import datetime as dt
import errno
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

from dtsen.cases.rounds import version_cases
from dtsen.config import settings
from dtsen.errors import DataError
from dtsen.integrity.summary import version_integrity
from dtsen.publish.candidate import PUBLISH_LOCK_KEY
from dtsen.sqlfiles import statements
from dtsen.storage import DIR_MODE, FILE_MODE, StorageFull, file_sha256, make_dirs

log = logging.getLogger(__name__)

PUBLISHABLE = ("AUDITED", "APPROVED")  # may be published now
RELEASED = ("PUBLISHED", "SUPERSEDED")  # published before: publishing again returns them


class PublishError(DataError):
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
    from dtsen.programs import load_programs

    queries = statements("publish/files.sql")
    files = {
        "keluarga.parquet": queries["keluarga"],
        "anggota.parquet": queries["anggota"],
        "perubahan.parquet": queries["perubahan"],
    }
    # a program with family components (PKH) lists each recipient family's in an extra column
    with_components = {p.id for p in load_programs().programs if p.components}
    for program in program_ids:
        query = queries["program_components" if program in with_components else "program"]
        files[f"programs/{program}.parquet"] = query
    return files


LARGEST_FIRST = {"anggota.parquet": 0, "keluarga.parquet": 1}  # then the rest, in the contract's order


def write_version_files(
    conn: psycopg.Connection,
    version: int,
    previous: int | None,
    program_ids: list[str],
    target: Path,
    streams: int = 1,
) -> tuple[dict[str, str], dict[str, float], dict[str, int]]:
    """Write the version's files into `target`. With several streams, each file is written by its own
    connection, all reading the snapshot of `conn`'s transaction (so they write one state of the
    warehouse), the largest files first; each stream's memory is bounded by its Parquet writer."""
    from concurrent.futures import ThreadPoolExecutor

    from dtsen.progress import Progress
    from dtsen.publish.parquet import copy_to_parquet  # pyarrow: not at DAG parse

    jobs = []
    for relative, query in version_files(program_ids).items():
        params = {"version": version, "previous": previous if previous is not None else -1}
        if relative.startswith("programs/"):
            params["program"] = Path(relative).stem
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        jobs.append((relative, query, params))
    checksums, seconds, rows = {}, {}, {}
    progress = Progress(f"version {version}: files", [relative for relative, _, _ in jobs])

    def write(connection: psycopg.Connection, relative: str, query: str, params: dict) -> None:
        started = time.perf_counter()
        rows[relative] = copy_to_parquet(connection, query, target / relative, params)
        seconds[relative] = time.perf_counter() - started
        checksums[relative] = file_sha256(target / relative)[0]
        progress.finished(relative, rows[relative], seconds[relative])

    # a transaction that has written cannot share what it wrote: then one stream, on its connection
    wrote = conn.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL").fetchone()[0]
    if streams <= 1 or len(jobs) == 1 or wrote:
        for job in jobs:
            write(conn, *job)
        return checksums, seconds, rows
    snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]

    def stream(job: tuple[str, str, dict]) -> None:
        from dtsen.warehouse import engine

        with engine.connect() as reader:
            reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            reader.read_only = True
            reader.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            write(reader, *job)

    largest_first = sorted(jobs, key=lambda job: LARGEST_FIRST.get(job[0], len(LARGEST_FIRST)))
    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="publish-stream") as pool:
        for done in [pool.submit(stream, job) for job in largest_first]:
            done.result()  # the first failure is raised; the caller removes the half-written folder
    order = [relative for relative, _, _ in jobs]  # the manifest lists files in the contract's order
    return (
        {r: checksums[r] for r in order},
        {r: seconds[r] for r in order},
        {r: rows[r] for r in order},
    )


INCOMPLETE_PREFIX = ".incomplete-"
# With the folder's name (hashtext), held by the publication writing that folder for as long as its
# transaction runs (taken before the folder exists): a folder whose lock is free is a killed one's.
INCOMPLETE_LOCK_KEY = 0x0D75E7  # with the folder name as the second key; distinct from every other dtsen lock


@dataclass
class Leftovers:
    """What interrupted publications left in `versions/` (hidden folders holding full NIKs and names)."""

    removed: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)  # a running publication is writing it: left alone
    failed: dict[str, str] = field(default_factory=dict)  # could not be removed: name -> why

    def lines(self, versions: Path) -> list[str]:
        """What was removed or left to a running publication, for operators (paths only)."""
        return [
            *(
                f"removed {versions / n}: left by an interrupted publication (it held personal data)"
                for n in self.removed
            ),
            *(
                f"{versions / n}: being written by a publication running now (left alone)"
                for n in self.running
            ),
        ]

    def problems(self, versions: Path) -> list[str]:
        return [
            f"{versions / n} was left by an interrupted publication and could not be removed ({why}): "
            "remove it by hand, it holds personal data"
            for n, why in self.failed.items()
        ]


def incomplete_folders(versions: Path) -> list[Path]:
    return sorted(versions.glob(f"{INCOMPLETE_PREFIX}*")) if versions.is_dir() else []


def remove_incomplete(conn: psycopg.Connection, versions: Path) -> Leftovers:
    """Delete what interrupted publications left behind (they hold full NIKs and names), never a folder
    a publication is writing now: each holds a lock on its folder's name until its transaction ends,
    so a folder whose lock this transaction can take is a dead publication's."""
    found = Leftovers()
    for leftover in incomplete_folders(versions):
        free = conn.execute(
            "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (INCOMPLETE_LOCK_KEY, leftover.name)
        ).fetchone()[0]
        if not free:
            found.running.append(leftover.name)
            continue
        try:
            shutil.rmtree(leftover)
        except FileNotFoundError:
            continue  # another command removed it meanwhile
        except OSError as exc:
            found.failed[leftover.name] = f"{type(exc).__name__}: {exc.strerror}"
            log.error("%s could not be removed (%s); it holds personal data", leftover, exc.strerror)
            continue
        found.removed.append(leftover.name)
        log.warning("removed %s, left by an interrupted publication (it held personal data)", leftover)
    return found


def unrecorded_versions(conn: psycopg.Connection, publish_root: Path) -> list[int]:
    """Version folders on disk whose publication the warehouse never recorded: a crash between the
    rename and the commit. The next publication of their round adopts them."""
    versions = publish_root / "versions"
    if not versions.is_dir():
        return []
    on_disk = {int(p.name) for p in versions.iterdir() if p.name.isdigit() and p.is_dir()}
    recorded = {
        v
        for (v,) in conn.execute(
            "SELECT version FROM publish.version WHERE status IN ('PUBLISHED', 'SUPERSEDED')"
        )
    }
    return sorted(on_disk - recorded)


def unrecorded_warning(conn: psycopg.Connection, publish_root: Path) -> str | None:
    """For operators: a newer version on disk than the warehouse's current one, if any."""
    current = conn.execute("SELECT version FROM publish.current_version").fetchone()
    current = current[0] if current else None
    newer = [v for v in unrecorded_versions(conn, publish_root) if current is None or v > current]
    if not newer:
        return None
    return (
        f"version {newer[-1]} is in {publish_root / 'versions'} but its publication was never recorded "
        f"(an interrupted publish); version {current if current is not None else '(none)'} is current until "
        "its round is published again (`dtsen publish --round ...` or the DAG), which adopts it"
    )


def _private(path: Path) -> None:
    """The version's files: readable by the service's user and group only (they hold personal data)."""
    for item in path.rglob("*"):
        item.chmod(DIR_MODE if item.is_dir() else FILE_MODE)
    path.chmod(DIR_MODE)


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
    # One publication at a time, warehouse-wide, held across the file writing until the caller's
    # transaction ends.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
    return _publish_locked(
        conn, version, final, previous, counts, programs, model, round_id, audit, approved_by
    )


def _publish_locked(
    conn: psycopg.Connection,
    version: int,
    final: Path,
    previous: int | None,
    counts: dict,
    programs: dict,
    model: dict,
    round_id: str,
    audit: dict | None,
    approved_by: str | None,
) -> PublishSummary:
    status, stored_manifest = conn.execute(
        "SELECT status, manifest FROM publish.version WHERE version = %s", (version,)
    ).fetchone()
    if status in RELEASED:  # published by another run while this one waited for the lock
        return PublishSummary(version, final, False, stored_manifest)
    make_dirs(final.parent)
    remove_incomplete(conn, final.parent)
    if final.exists():
        manifest = verify_version_dir(final)  # a crash after the rename: adopt, never rewrite
        if manifest.get("version") != version:
            raise PublishError(f"{final} holds version {manifest.get('version')}, not {version}")
        # only this version's own folder: one another warehouse (or an earlier one, rebuilt) wrote
        # under the same number holds another registry's rows
        ours = json.loads(json.dumps({"round_id": round_id, "previous_version": previous, "counts": counts}))
        differing = ", ".join(k for k, value in ours.items() if manifest.get(k) != value)
        if differing:
            raise PublishError(
                f"{final} holds another version {version} (its {differing} differ from this warehouse's): "
                "it was not written from this warehouse; move it away, then publish again"
            )
        summary = PublishSummary(version, final, True, manifest)
    else:
        staging = final.parent / f"{INCOMPLETE_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
        conn.execute(  # before the folder exists: whoever finds it then sees it is being written
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (INCOMPLETE_LOCK_KEY, staging.name)
        )
        staging.mkdir(mode=DIR_MODE)
        try:
            program_ids = sorted(programs)
            checksums, seconds, rows = write_version_files(
                conn, version, previous, program_ids, staging, settings().publish_streams
            )
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
                "integrity": version_integrity(conn, version),  # additive: counts only
                "cases": version_cases(conn, version),  # additive: counts only
            }
            with open(staging / "manifest.json", "w", encoding="utf-8") as fh:
                json.dump(manifest, fh, indent=2, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            _private(staging)
            for path in staging.rglob("*.parquet"):
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
            _fsync_dir(staging)
            os.rename(staging, final)  # atomic on one filesystem; fails if the version exists
            _fsync_dir(final.parent)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(staging, None) from exc
            raise
        summary = PublishSummary(version, final, True, manifest, seconds, rows)
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
        # one view per program for its team: every published version's recipients (filter on version),
        # made by the owner's function (the round's role creates nothing)
        conn.execute("SELECT publish.ensure_program_view(%s)", (program,))
    conn.execute(
        "UPDATE ingest.round SET status = 'PUBLISHED', published_version = %s WHERE round_id = %s",
        (version, round_id),
    )
    return summary
