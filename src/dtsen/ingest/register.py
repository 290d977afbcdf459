"""Register a round's submissions and stage their files, idempotently.

Each submission is handled in one transaction that locks its row: re-running a round, or two
workers picking the same submission, never stages anything twice. Outcomes carry only ids,
counts and codes (safe for logs and XCom).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dtsen.contract import ROUND_ID_RE, SUBMISSION_FILES
from dtsen.ingest import rawstore
from dtsen.ingest.landing import SubmissionDir
from dtsen.ingest.manifest import check_manifest
from dtsen.ingest.stage import stage_file

log = logging.getLogger(__name__)


class RoundOrderError(RuntimeError):
    pass


def round_reference_date(round_id: str) -> dt.date:
    """The round's cut-off: the last day of its quarter."""
    if not ROUND_ID_RE.match(round_id):
        raise ValueError(f"not a round id: {round_id!r}")
    year, quarter = int(round_id[:4]), int(round_id[-1])
    first_of_next = dt.date(year + (quarter == 4), 1 if quarter == 4 else quarter * 3 + 1, 1)
    return first_of_next - dt.timedelta(days=1)


def ensure_round(conn: psycopg.Connection, round_id: str) -> int:
    """The round's round_seq, registering it (and its partitions) on first use."""
    with conn.transaction():
        row = conn.execute("SELECT round_seq FROM ingest.round WHERE round_id = %s", (round_id,)).fetchone()
        if row is None:
            later = conn.execute(
                "SELECT max(round_id) FROM ingest.round WHERE round_id > %s", (round_id,)
            ).fetchone()[0]
            if later is not None:
                raise RoundOrderError(f"round {round_id} comes before the already registered round {later}")
            row = conn.execute(
                "INSERT INTO ingest.round (round_id, reference_date) VALUES (%s, %s) "
                "ON CONFLICT (round_id) DO UPDATE SET round_id = EXCLUDED.round_id RETURNING round_seq",
                (round_id, round_reference_date(round_id)),
            ).fetchone()
        round_seq = row[0]
        conn.execute(
            "SELECT staging.ensure_round_partitions(%(r)s::smallint), quality.ensure_round_partitions(%(r)s::smallint),"
            " registry.ensure_round_partitions(%(r)s::smallint)",
            {"r": round_seq},
        )
    return round_seq


@dataclass
class FileOutcome:
    file_name: str
    file_kind: str
    rows_received: int = 0
    code: str | None = None
    detail: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class SubmissionOutcome:
    submission_pk: int
    source: str
    submission_id: str
    status: str
    reason_code: str | None = None
    detail: str = ""
    files: list[FileOutcome] = field(default_factory=list)
    processed_now: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


def _lock_or_create(conn: psycopg.Connection, round_seq: int, sub: SubmissionDir) -> tuple[int, str]:
    conn.execute(
        "INSERT INTO ingest.submission (round_seq, source, submission_id) VALUES (%s, %s, %s) "
        "ON CONFLICT (round_seq, source, submission_id) DO NOTHING",
        (round_seq, sub.source, sub.submission_id),
    )
    pk, status = conn.execute(
        "SELECT submission_pk, status FROM ingest.submission WHERE round_seq = %s AND source = %s "
        "AND submission_id = %s FOR UPDATE",
        (round_seq, sub.source, sub.submission_id),
    ).fetchone()
    return pk, status


def load_outcome(conn: psycopg.Connection, submission_pk: int) -> SubmissionOutcome:
    source, submission_id, status, code, detail = conn.execute(
        "SELECT source, submission_id, status, reason_code, coalesce(detail, '') FROM ingest.submission "
        "WHERE submission_pk = %s",
        (submission_pk,),
    ).fetchone()
    files = [
        FileOutcome(name, kind, rows or 0, fcode, fdetail or "", list(warnings))
        for name, kind, rows, fcode, fdetail, warnings in conn.execute(
            "SELECT file_name, file_kind, rows_received, reason_code, detail, warnings FROM ingest.submission_file "
            "WHERE submission_pk = %s ORDER BY file_name",
            (submission_pk,),
        )
    ]
    return SubmissionOutcome(
        submission_pk, source, submission_id, status, code, detail, files, processed_now=False
    )


def _finish(conn: psycopg.Connection, outcome: SubmissionOutcome) -> SubmissionOutcome:
    conn.execute(
        "UPDATE ingest.submission SET status = %s, reason_code = %s, detail = %s, updated_at = now() "
        "WHERE submission_pk = %s",
        (outcome.status, outcome.reason_code, outcome.detail or None, outcome.submission_pk),
    )
    return outcome


def ingest_submission(
    conn: psycopg.Connection,
    landing_root: Path,
    raw_root: Path,
    round_seq: int,
    sub: SubmissionDir,
    known_regencies: Collection[str] | None = None,
) -> SubmissionOutcome:
    """Check, register and stage one submission; a no-op returning the stored outcome if done before."""
    with conn.transaction():
        pk, status = _lock_or_create(conn, round_seq, sub)
        if status != "RECEIVED":
            return load_outcome(conn, pk)
        outcome = SubmissionOutcome(pk, sub.source, sub.submission_id, "STAGED")
        check = check_manifest(landing_root, sub, known_regencies)
        manifest = check.manifest if isinstance(check.manifest, dict) else None
        conn.execute(
            "UPDATE ingest.submission SET kode_wilayah = %s, submitted_at = %s, submitted_by = %s, manifest = %s, "
            "fileset_sha256 = %s WHERE submission_pk = %s",
            (
                str(manifest.get("kode_wilayah"))[:16] if manifest else None,
                check.submitted_at,
                str(manifest.get("submitted_by"))[:200] if manifest else None,
                Jsonb(json.loads(json.dumps(manifest, default=str))) if manifest else None,
                check.fileset_sha256 if check.sha256 else None,
                pk,
            ),
        )
        if check.code == "MANIFEST_INVALID":
            outcome.status, outcome.reason_code, outcome.detail = "REJECTED", check.code, check.detail
            return _finish(conn, outcome)

        specs = {spec.file_name: spec for spec in SUBMISSION_FILES[sub.source]}
        for name, path in check.files.items():
            kept = rawstore.keep(raw_root, path, check.sha256[name])
            conn.execute(
                "INSERT INTO ingest.submission_file (submission_pk, file_name, file_kind, sha256, size_bytes, raw_path) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (pk, name, specs[name].kind.value, check.sha256[name], check.size_bytes[name], str(kept)),
            )
        if check.code == "CHECKSUM_MISMATCH":
            outcome.status, outcome.reason_code, outcome.detail = "REJECTED", check.code, check.detail
            return _finish(conn, outcome)

        duplicate_of = conn.execute(
            "SELECT submission_pk FROM ingest.submission WHERE fileset_sha256 = %s AND submission_pk <> %s "
            "AND coalesce(reason_code, '') NOT IN ('MANIFEST_INVALID', 'CHECKSUM_MISMATCH') "
            "ORDER BY submission_pk LIMIT 1",
            (check.fileset_sha256, pk),
        ).fetchone()
        if duplicate_of:
            conn.execute(
                "UPDATE ingest.submission SET duplicate_of = %s WHERE submission_pk = %s",
                (duplicate_of[0], pk),
            )
            outcome.status, outcome.reason_code = "REJECTED", "DUPLICATE_SUBMISSION"
            outcome.detail = f"files are byte-identical to submission #{duplicate_of[0]}"
            return _finish(conn, outcome)

        for name in sorted(check.files, key=lambda n: list(specs).index(n)):
            spec = specs[name]
            staged = stage_file(
                conn,
                check.files[name],
                spec,
                target=sql.Identifier("staging", spec.kind.value),
                key_columns={"round_seq": round_seq, "submission_pk": pk},
            )
            file_outcome = FileOutcome(
                name, spec.kind.value, staged.rows_received, staged.code, staged.detail, staged.warnings
            )
            outcome.files.append(file_outcome)
            conn.execute(
                "UPDATE ingest.submission_file SET rows_received = %s, status = %s, reason_code = %s, detail = %s, "
                "warnings = %s WHERE submission_pk = %s AND file_name = %s",
                (
                    staged.rows_received,
                    "REJECTED" if staged.code else "STAGED",
                    staged.code,
                    staged.detail or None,
                    Jsonb(staged.warnings),
                    pk,
                    name,
                ),
            )
            if staged.code and outcome.reason_code is None:
                # The contract: a file rejected as a whole stops the rest of its submission merging.
                outcome.status, outcome.reason_code = "REJECTED", staged.code
                outcome.detail = f"{name}: {staged.detail}"
        log.info(
            "submission #%s (%s) %s %s",
            pk,
            sub.source,
            outcome.status,
            outcome.reason_code or "",
        )
        return _finish(conn, outcome)
