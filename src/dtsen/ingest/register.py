"""Register a round's submissions and stage their files, idempotently.

Each submission is handled in one transaction that locks its row: re-running a round, or two
workers picking the same submission, never stages anything twice. Every delivered file is copied
into the raw store once, hashed as it is copied, and checked and staged from that copy. Outcomes
carry only ids, counts and codes (safe for logs and XCom).

What cannot be processed as a submission is never silently dropped: it becomes a refused entry
(`ingest.refused_entry`) with feedback of its own under `feedback/<round>/~refused/`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dtsen.contract import ROUND_ID_RE, SOURCES, SUBMISSION_FILES
from dtsen.errors import DataError
from dtsen.ingest import csvscan, rawstore
from dtsen.ingest.landing import Refused, SubmissionDir, inside, list_round
from dtsen.ingest.manifest import check_manifest, data_files, fileset_sha256
from dtsen.ingest.stage import stage_file
from dtsen.notify.messages import angka
from dtsen.progress import Progress, timed
from dtsen.storage import file_sha256

log = logging.getLogger(__name__)

ROUND_LOCK_KEY = 0x0D75E0  # registering rounds: one at a time, so their order is decided once
SUBMISSION_ID_LOCK_KEY = 0x0D75E5  # one submission_id of a round, across its sources
REFUSED_DIR = "~refused"  # "~" cannot appear in a submission_id: no submission's feedback lands here


class RoundOrderError(DataError):
    pass


def round_reference_date(round_id: str) -> dt.date:
    """The round's cut-off: the last day of its quarter."""
    if not ROUND_ID_RE.match(round_id):
        raise ValueError(f"not a round id: {round_id!r}")
    year, quarter = int(round_id[:4]), int(round_id[-1])
    first_of_next = dt.date(year + (quarter == 4), 1 if quarter == 4 else quarter * 3 + 1, 1)
    return first_of_next - dt.timedelta(days=1)


def _landed_rounds(landing_root: Path | None) -> list[str]:
    if landing_root is None or not landing_root.is_dir():
        return []
    root = landing_root.resolve()
    return sorted(
        p.name
        for p in root.iterdir()
        if ROUND_ID_RE.match(p.name) and (found := inside(root, p)) and found.is_dir()
    )


def ensure_round(conn: psycopg.Connection, round_id: str, landing_root: Path | None = None) -> int:
    """The round's round_seq, registering it (and its partitions) on first use.

    Registration is serialised. Rounds run in order, so a round is refused when a later one is
    registered, or when an earlier round has a folder in the landing zone and is not merged yet:
    whatever order rounds are started in, every round can still be run.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ROUND_LOCK_KEY,))
    row = conn.execute("SELECT round_seq FROM ingest.round WHERE round_id = %s", (round_id,)).fetchone()
    if row is None:
        later = conn.execute(
            "SELECT max(round_id) FROM ingest.round WHERE round_id > %s", (round_id,)
        ).fetchone()[0]
        if later is not None:
            raise RoundOrderError(f"round {round_id} comes before the already registered round {later}")
        finished = dict(
            conn.execute("SELECT round_id, status IN ('MERGED', 'PUBLISHED') FROM ingest.round").fetchall()
        )
        for earlier in _landed_rounds(landing_root):
            if earlier < round_id and not finished.get(earlier, False):
                raise RoundOrderError(
                    f"round {earlier} has a landing folder and is not merged yet: run it before "
                    f"{round_id} (rounds run in order), or move its folder out of the landing zone"
                )
        row = conn.execute(
            "INSERT INTO ingest.round (round_id, reference_date) VALUES (%s, %s) RETURNING round_seq",
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
    submission_pk: int | None  # None: refused before registration (see refused_pk)
    source: str
    submission_id: str
    status: str
    reason_code: str | None = None
    detail: str = ""
    files: list[FileOutcome] = field(default_factory=list)
    processed_now: bool = True
    refused_pk: int | None = None


# -- refused entries ---------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def refused_feedback_dir(source: str, name: str, key: str) -> str:
    """`~refused/<source>-<name, made safe>-<key>`: readable, unique, and never a submission's folder."""
    safe = _UNSAFE.sub("_", name).strip("._-")[:48] or "folder"
    return f"{REFUSED_DIR}/{source}-{safe}-{key[:10]}"


def _entry_key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _count_rows(paths: dict[str, Path]) -> dict[str, int]:
    counted = {}
    for name, path in sorted(paths.items()):
        try:
            counted[name] = csvscan.count_data_rows(path)
        except (OSError, csvscan.ScanError):
            counted[name] = 0
    return counted


def record_refused(
    conn: psycopg.Connection,
    round_seq: int,
    *,
    source: str,
    entry: str,
    key: str,
    feedback_dir: str,
    detail: str,
    pesan: str,
    rows: dict[str, int],
) -> int:
    """Keep a refused landing entry (once per round, source and key); returns its refused_pk."""
    conn.execute(
        "INSERT INTO ingest.refused_entry (round_seq, source, entry, entry_key, reason_code, detail, pesan, "
        "feedback_dir, rows) VALUES (%s, %s, %s, %s, 'MANIFEST_INVALID', %s, %s, %s, %s) "
        "ON CONFLICT (round_seq, source, entry_key) DO NOTHING",
        (round_seq, source, entry, key, detail, pesan, feedback_dir, Jsonb(rows)),
    )
    pk = conn.execute(
        "SELECT refused_pk FROM ingest.refused_entry WHERE round_seq = %s AND source = %s AND entry_key = %s",
        (round_seq, source, key),
    ).fetchone()[0]
    log.warning("round #%s: refused landing entry %s (%s)", round_seq, entry, detail)
    return pk


def record_refused_listing(conn: psycopg.Connection, round_seq: int, refused: list[Refused]) -> list[int]:
    """Keep the entries the landing-zone listing refused (bad names, links, stray files)."""
    pks = []
    for r in refused:
        key = _entry_key("listing", r.source, r.name)
        files = {}
        if r.folder is not None:  # a folder inside the landing zone: its files may be read
            files = {
                spec.file_name: r.folder / spec.file_name
                for spec in SUBMISSION_FILES.get(r.source, ())
                if (found := inside(r.folder, r.folder / spec.file_name)) is not None and found.is_file()
            }
        pks.append(
            record_refused(
                conn,
                round_seq,
                source=r.source,
                entry=r.entry,
                key=key,
                feedback_dir=refused_feedback_dir(r.source, r.name, key),
                detail=r.why,
                pesan=r.pesan,
                rows=_count_rows(files),
            )
        )
    return pks


def _refuse_submission(
    conn: psycopg.Connection,
    round_seq: int,
    sub: SubmissionDir,
    key: str,
    detail: str,
    pesan: str,
    files: dict[str, Path],
) -> SubmissionOutcome:
    pk = record_refused(
        conn,
        round_seq,
        source=sub.source,
        entry=f"{sub.round_id}/{sub.source}/{sub.submission_id}",
        key=key,
        feedback_dir=refused_feedback_dir(sub.source, sub.submission_id, key),
        detail=detail,
        pesan=pesan,
        rows=_count_rows(files),
    )
    return SubmissionOutcome(
        None, sub.source, sub.submission_id, "REJECTED", "MANIFEST_INVALID", detail, refused_pk=pk
    )


def _id_taken_by(
    conn: psycopg.Connection, round_seq: int, landing_root: Path, sub: SubmissionDir
) -> str | None:
    """The source that holds this submission_id in the round, if another one does.

    A source registered with the id holds it; else, among folders not yet registered, the first in
    the contract's order (pemda, bps, kemensos): the outcome does not depend on which task runs first.
    """
    registered = conn.execute(
        "SELECT source FROM ingest.submission WHERE round_seq = %s AND submission_id = %s AND source <> %s",
        (round_seq, sub.submission_id, sub.source),
    ).fetchone()
    if registered:
        return registered[0]
    mine = conn.execute(
        "SELECT 1 FROM ingest.submission WHERE round_seq = %s AND submission_id = %s AND source = %s",
        (round_seq, sub.submission_id, sub.source),
    ).fetchone()
    if mine:
        return None
    root = landing_root.resolve()
    for other in SOURCES[: SOURCES.index(sub.source)]:
        folder = inside(root, root / sub.round_id / other / sub.submission_id)
        if folder is not None and folder.is_dir():
            return other
    return None


# -- submissions ---------------------------------------------------------------------------------------


def _registered(
    conn: psycopg.Connection, round_seq: int, sub: SubmissionDir, *, lock: bool = True
) -> tuple[int, str]:
    """(submission_pk, status) of the submission's row, created RECEIVED if it has none; locked for
    processing unless `lock` is False (another task's row, only to be pointed at)."""
    conn.execute(
        "INSERT INTO ingest.submission (round_seq, source, submission_id) VALUES (%s, %s, %s) "
        "ON CONFLICT (round_seq, source, submission_id) DO NOTHING",
        (round_seq, sub.source, sub.submission_id),
    )
    pk, status = conn.execute(
        sql.SQL(
            "SELECT submission_pk, status FROM ingest.submission WHERE round_seq = %s AND source = %s "
            "AND submission_id = %s{}"
        ).format(sql.SQL(" FOR UPDATE" if lock else "")),
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


def _finish(
    conn: psycopg.Connection,
    outcome: SubmissionOutcome,
    code: str | None = None,
    detail: str = "",
    pesan: str = "",
) -> SubmissionOutcome:
    if code is not None:
        outcome.status, outcome.reason_code, outcome.detail = "REJECTED", code, detail
    conn.execute(
        "UPDATE ingest.submission SET status = %s, reason_code = %s, detail = %s, pesan = %s, updated_at = now() "
        "WHERE submission_pk = %s",
        (outcome.status, outcome.reason_code, outcome.detail or None, pesan or None, outcome.submission_pk),
    )
    log.info(
        "submission #%s (%s) %s %s",
        outcome.submission_pk,
        outcome.source,
        outcome.status,
        outcome.reason_code or "",
    )
    return outcome


def _redelivered_with_new_content(
    conn: psycopg.Connection, round_seq: int, landing_root: Path, sub: SubmissionDir, pk: int
) -> None:
    """A processed submission whose folder now holds other bytes: refused (ids are unique in a round)."""
    stored = conn.execute(
        "SELECT fileset_sha256 FROM ingest.submission WHERE submission_pk = %s", (pk,)
    ).fetchone()[0]
    present = data_files(landing_root, sub)
    if not present:
        return
    current = fileset_sha256({name: file_sha256(path)[0] for name, path in present.items()})
    if current == stored:
        return
    _refuse_submission(
        conn,
        round_seq,
        sub,
        _entry_key("redelivered", sub.source, sub.submission_id, current),
        f"submission {sub.source}/{sub.submission_id} was already processed in this round and its files "
        "have changed since; the new content is not processed (deliver it under a new submission_id)",
        f"Kiriman {sub.submission_id} sudah diproses pada putaran ini, dan berkasnya sekarang berbeda. "
        "Isi yang baru tidak diproses: kirim perubahan sebagai kiriman baru dengan submission_id lain.",
        present,
    )


def ingest_submission(
    conn: psycopg.Connection,
    landing_root: Path,
    raw_root: Path,
    round_seq: int,
    sub: SubmissionDir,
    known_regencies: Collection[str] | None = None,
    *,
    max_submission_bytes: int | None = None,
) -> SubmissionOutcome:
    """Check, register and stage one submission; a no-op returning the stored outcome if done before."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
        (SUBMISSION_ID_LOCK_KEY, f"{round_seq}/{sub.submission_id}"),
    )
    holder = _id_taken_by(conn, round_seq, landing_root, sub)
    if holder is not None:
        return _refuse_submission(
            conn,
            round_seq,
            sub,
            _entry_key("id-taken", sub.source, sub.submission_id),
            f"submission_id {sub.submission_id} is also used under {holder}/ in this round; ids are unique "
            f"within a round, so the {sub.source}/ one is refused",
            f"submission_id {sub.submission_id} juga dipakai oleh kiriman sumber {holder} pada putaran ini. "
            "submission_id harus unik dalam satu putaran: kirim ulang dengan submission_id lain.",
            data_files(landing_root, sub),
        )
    pk, status = _registered(conn, round_seq, sub)
    if status != "RECEIVED":
        _redelivered_with_new_content(conn, round_seq, landing_root, sub, pk)
        return load_outcome(conn, pk)
    return _register_and_stage(
        conn, landing_root, raw_root, round_seq, sub, pk, known_regencies, max_submission_bytes
    )


def _register_and_stage(
    conn: psycopg.Connection,
    landing_root: Path,
    raw_root: Path,
    round_seq: int,
    sub: SubmissionDir,
    pk: int,
    known_regencies: Collection[str] | None,
    max_submission_bytes: int | None,
) -> SubmissionOutcome:
    outcome = SubmissionOutcome(pk, sub.source, sub.submission_id, "STAGED")
    check = check_manifest(landing_root, sub, known_regencies)
    manifest = check.manifest if isinstance(check.manifest, dict) else None
    specs = {spec.file_name: spec for spec in SUBMISSION_FILES[sub.source]}
    present = data_files(landing_root, sub)

    size = sum(path.stat().st_size for path in present.values())
    if max_submission_bytes is not None and size > max_submission_bytes:
        # not even copied: the limit keeps a hostile delivery from filling the raw store
        for name, path in present.items():
            _insert_file(conn, pk, name, specs[name].kind.value, None, path.stat().st_size, None)
            rows = _count_rows({name: path})[name]  # read (streamed), never copied or staged
            _update_file(conn, pk, name, rows, "REJECTED", None, None, None, [])
            outcome.files.append(FileOutcome(name, specs[name].kind.value, rows))
        _record_manifest(conn, pk, manifest, check, None)
        return _finish(
            conn,
            outcome,
            "FILE_UNREADABLE",
            f"the submission's files are {size:,} bytes, over the limit of {max_submission_bytes:,} "
            "(DTSEN_MAX_SUBMISSION_BYTES)",
            f"Ukuran berkas kiriman ini {angka(size)} bita, melebihi batas {angka(max_submission_bytes)} bita per "
            "kiriman. Bagi data menjadi beberapa kiriman lalu kirim ulang.",
        )

    kept = {name: rawstore.keep(raw_root, path) for name, path in present.items()}
    for name, copy in kept.items():
        _insert_file(conn, pk, name, specs[name].kind.value, copy.sha256, copy.size_bytes, copy.path)
    fileset = fileset_sha256({name: copy.sha256 for name, copy in kept.items()}) if kept else None
    _record_manifest(conn, pk, manifest, check, fileset)

    def refuse_all(code: str, detail: str, pesan: str) -> SubmissionOutcome:
        for name, copy in kept.items():
            rows = csvscan.count_data_rows(copy.path)
            _update_file(conn, pk, name, rows, "REJECTED", None, None, None, [])
            outcome.files.append(FileOutcome(name, specs[name].kind.value, rows))
        return _finish(conn, outcome, code, detail, pesan)

    if check.code == "MANIFEST_INVALID":
        return refuse_all(check.code, check.detail, check.pesan)
    mismatched = sorted(name for name, copy in kept.items() if copy.sha256 != check.listed[name])
    if mismatched:
        names = ", ".join(mismatched)
        return refuse_all(
            "CHECKSUM_MISMATCH",
            f"sha256 of {names} differs from the manifest",
            f"Checksum SHA-256 {names} tidak sama dengan yang tercantum di manifest.json.",
        )
    original = _identical_earlier(
        conn, landing_root, round_seq, sub, pk, fileset, check.submitted_at, known_regencies
    )
    if original is not None:
        original_pk, original_round, original_id = original
        conn.execute(
            "UPDATE ingest.submission SET duplicate_of = %s WHERE submission_pk = %s", (original_pk, pk)
        )
        return refuse_all(
            "DUPLICATE_SUBMISSION",
            f"files are byte-identical to submission {original_id} of round {original_round}",
            f"Berkas kiriman ini sama persis dengan kiriman {original_id} (putaran {original_round}), "
            "yang diproses sebagai kiriman aslinya; baris-barisnya tidak diproses dua kali.",
        )

    first_pesan = ""
    ordered = sorted(kept, key=lambda n: list(specs).index(n))
    progress = Progress(f"submission {sub.submission_id}: staging", ordered)
    for name in ordered:
        spec = specs[name]
        with timed(progress, name) as part:
            staged = stage_file(
                conn,
                kept[name].path,
                spec,
                target=sql.Identifier("staging", spec.kind.value),
                key_columns={"round_seq": round_seq, "submission_pk": pk},
            )
            part.rows = staged.rows_received
        outcome.files.append(
            FileOutcome(
                name, spec.kind.value, staged.rows_received, staged.code, staged.detail, staged.warnings
            )
        )
        _update_file(
            conn,
            pk,
            name,
            staged.rows_received,
            "REJECTED" if staged.code else "STAGED",
            staged.code,
            staged.detail,
            staged.pesan,
            staged.warnings,
        )
        if staged.code and outcome.reason_code is None:
            # The contract: a file rejected as a whole stops the rest of its submission merging.
            outcome.status, outcome.reason_code = "REJECTED", staged.code
            outcome.detail = f"{name}: {staged.detail}"
            first_pesan = f"{name}: {staged.pesan}"
    if outcome.reason_code:
        return _finish(conn, outcome, outcome.reason_code, outcome.detail, first_pesan)
    return _finish(conn, outcome)


def _identical_earlier(
    conn: psycopg.Connection,
    landing_root: Path,
    round_seq: int,
    sub: SubmissionDir,
    pk: int,
    fileset: str | None,
    submitted_at: dt.datetime | None,
    known_regencies: Collection[str] | None,
) -> tuple[int, str, str] | None:
    """The submission this one's files are byte-identical to, as (pk, round_id, submission_id).

    An earlier round's submission always came first. Within the round the first is the one with the
    earliest `submitted_at`, then the lowest submission_id: a rule of the deliveries, not of which
    task ran first. A same-round original not registered yet is recognised from its landing folder
    (a valid manifest listing the same files, its own id, and its bytes hashed). An original refused for its manifest or checksum is no original."""
    no_original = ["MANIFEST_INVALID", "CHECKSUM_MISMATCH"]
    earlier_round = conn.execute(
        "SELECT s.submission_pk, r.round_id, s.submission_id FROM ingest.submission s JOIN ingest.round r "
        "USING (round_seq) WHERE s.fileset_sha256 = %s AND s.round_seq <> %s "
        "AND coalesce(s.reason_code, '') <> ALL(%s) "
        "ORDER BY s.round_seq, s.submitted_at, s.submission_id LIMIT 1",
        (fileset, round_seq, no_original),
    ).fetchone()
    if earlier_round is not None:
        return earlier_round
    if fileset is None or submitted_at is None:
        return None
    mine = (submitted_at, sub.submission_id)
    registered = {
        (source, submission_id): (other_pk, other_fileset, other_at, ok)
        for source, submission_id, other_pk, other_fileset, other_at, ok in conn.execute(
            "SELECT s.source, s.submission_id, s.submission_pk, s.fileset_sha256, s.submitted_at, "
            "coalesce(s.reason_code, '') <> ALL(%s) FROM ingest.submission s "
            "WHERE s.round_seq = %s AND s.submission_pk <> %s",
            (no_original, round_seq, pk),
        )
    }
    originals = []
    for other in list_round(landing_root, sub.round_id).submissions:
        if (other.source, other.submission_id) == (sub.source, sub.submission_id):
            continue
        known = registered.get((other.source, other.submission_id))
        if known is not None and known[1] is not None:
            other_pk, other_fileset, other_at, ok = known
            if ok and other_fileset == fileset and (other_at, other.submission_id) < mine:
                originals.append(((other_at, other.submission_id), other_pk))
            continue
        check = check_manifest(landing_root, other, known_regencies)  # as its own task will check it
        if (
            check.code is not None
            or check.submitted_at is None
            or (check.submitted_at, other.submission_id) >= mine
            or fileset_sha256(check.listed) != fileset
            or _id_taken_by(conn, round_seq, landing_root, other) is not None
        ):
            continue
        present = data_files(landing_root, other)
        if fileset_sha256({name: file_sha256(path)[0] for name, path in present.items()}) == fileset:
            originals.append(((check.submitted_at, other.submission_id), other))
    if not originals:
        return None
    (_, original_id), original = min(originals, key=lambda found: found[0])
    if isinstance(original, SubmissionDir):
        # Registered here (not processed: its own task does that) so the duplicate can point to it.
        # Should its task hold the row uncommitted, this waits for it; originals always come earlier
        # in the order, so two tasks never wait for each other.
        original = _registered(conn, round_seq, original, lock=False)[0]
    return original, sub.round_id, original_id


def _insert_file(
    conn: psycopg.Connection,
    pk: int,
    name: str,
    kind: str,
    sha256: str | None,
    size: int,
    raw_path: Path | None,
) -> None:
    conn.execute(
        "INSERT INTO ingest.submission_file (submission_pk, file_name, file_kind, sha256, size_bytes, raw_path) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (pk, name, kind, sha256, size, str(raw_path) if raw_path else None),
    )


def _update_file(
    conn: psycopg.Connection,
    pk: int,
    name: str,
    rows: int,
    status: str,
    code: str | None,
    detail: str | None,
    pesan: str | None,
    warnings: list[str],
) -> None:
    conn.execute(
        "UPDATE ingest.submission_file SET rows_received = %s, status = %s, reason_code = %s, detail = %s, "
        "pesan = %s, warnings = %s WHERE submission_pk = %s AND file_name = %s",
        (rows, status, code, detail or None, pesan or None, Jsonb(warnings), pk, name),
    )


def _record_manifest(
    conn: psycopg.Connection, pk: int, manifest: dict | None, check, fileset: str | None
) -> None:
    conn.execute(
        "UPDATE ingest.submission SET kode_wilayah = %s, submitted_at = %s, submitted_by = %s, manifest = %s, "
        "fileset_sha256 = %s WHERE submission_pk = %s",
        (
            str(manifest.get("kode_wilayah"))[:16] if manifest else None,
            check.submitted_at,
            str(manifest.get("submitted_by"))[:200] if manifest else None,
            Jsonb(json.loads(json.dumps(manifest, default=str))) if manifest else None,
            fileset,
            pk,
        ),
    )
