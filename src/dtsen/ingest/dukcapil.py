"""Load a Dukcapil (civil-registry) snapshot by difference against the current reference.

The latest snapshot on or before a round's cut-off is the authority on NIK existence, identity and
death for that round. Its extract is staged raw (COPY) and compared with the one typed reference
(ref.dukcapil, validity ranges by snapshot) in SQL, by NIK and row hash (sql/ingest/dukcapil_diff.sql):
only new, changed, vanished and unusable NIKs are written, and only their lines are validated row by
row. A reference row is kept only when well-formed and unambiguous (a NIK listed twice in one extract
is trusted in neither copy).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dtsen.contract import DUKCAPIL_PENDUDUK
from dtsen.errors import DataError
from dtsen.ingest import rawstore
from dtsen.ingest.dukcapil_guard import Thresholds, describe, judge
from dtsen.ingest.dukcapil_manifest import DukcapilManifest, ManifestProblem, read_manifest
from dtsen.ingest.dukcapil_review import APPLY, Review, hold, review_of, set_aside
from dtsen.ingest.landing import list_dukcapil_snapshots
from dtsen.ingest.stage import Narrowed, RawRecords, stage_file
from dtsen.progress import Progress, timed
from dtsen.sqlfiles import Statement, load, planner, probe_when_small, run, statements
from dtsen.storage import file_sha256

log = logging.getLogger(__name__)


@dataclass
class SnapshotOutcome:
    snapshot_pk: int
    snapshot_date: dt.date
    rows_received: int
    rows_kept: int
    code: str | None = None
    detail: str = ""
    loaded_now: bool = True
    diff: dict = field(default_factory=dict)


@dataclass
class SnapshotHeld:
    """The newest extract failed the plausibility check: nothing of it was applied; a person decides."""

    review: Review
    snapshot_date: dt.date


class SnapshotConflict(DataError):
    pass


class _Held(Exception):
    """Unwinds the savepoint of an extract that may not be applied (nothing of it is kept)."""

    def __init__(self, found: dict):
        self.found = found


def ingest_latest_snapshot(
    conn: psycopg.Connection,
    landing_root: Path,
    raw_root: Path,
    as_of: dt.date,
    thresholds: Thresholds | None = None,
) -> SnapshotOutcome | SnapshotHeld | None:
    """Load the newest snapshot dated on or before `as_of` that a person has not set aside; None when
    the landing zone has none. An implausible extract is held (SnapshotHeld) until a person decides;
    one that contradicts its manifest, or cannot be read, stops the round (SnapshotConflict)."""
    from dtsen.config import settings

    thresholds = thresholds or Thresholds.from_settings(settings())
    snapshots, refused = list_dukcapil_snapshots(landing_root)
    for r in refused:
        log.warning("dukcapil snapshot refused: %s (%s)", r.entry, r.why)
    conn.execute("LOCK TABLE ingest.dukcapil_snapshot IN SHARE ROW EXCLUSIVE MODE")
    aside = set_aside(conn)
    eligible = [
        s
        for s in snapshots
        if s.snapshot_date <= as_of
        and not (s.snapshot_date in aside and file_sha256(s.path)[0] in aside[s.snapshot_date])
    ]
    if not eligible:
        return None
    snapshot = eligible[-1]
    row = conn.execute(
        "SELECT snapshot_pk, sha256, rows_received, rows_kept FROM ingest.dukcapil_snapshot "
        "WHERE snapshot_date = %s",
        (snapshot.snapshot_date,),
    ).fetchone()
    if row is not None:
        pk, loaded_sha, received, kept = row
        if file_sha256(snapshot.path)[0] != loaded_sha:
            raise SnapshotConflict(
                f"Dukcapil snapshot {snapshot.snapshot_date} changed after it was loaded; "
                "deliver a corrected extract under a new date folder"
            )
        return SnapshotOutcome(pk, snapshot.snapshot_date, received or 0, kept or 0, loaded_now=False)
    base = conn.execute(
        "SELECT snapshot_pk, snapshot_date, rows_kept FROM ingest.dukcapil_snapshot "
        "ORDER BY snapshot_pk DESC LIMIT 1"
    ).fetchone()
    if base is not None and base[1] > snapshot.snapshot_date:
        # the reference only moves forward: an older extract would roll later deaths and corrections back
        raise SnapshotConflict(
            f"Dukcapil snapshot {snapshot.snapshot_date} is older than snapshot {base[1]}, already loaded; "
            "the reference cannot go back in time"
        )
    try:
        manifest = read_manifest(landing_root, snapshot.path, snapshot.snapshot_date)
    except ManifestProblem as exc:
        raise SnapshotConflict(f"Dukcapil snapshot {snapshot.snapshot_date} is refused: {exc}") from None
    # hashed as it is copied, and staged from the copy: the bytes loaded are the bytes recorded
    copy = rawstore.keep(raw_root, snapshot.path)
    if manifest is not None and manifest.sha256 != copy.sha256:
        raise SnapshotConflict(
            f"Dukcapil snapshot {snapshot.snapshot_date} is refused: penduduk.csv does not have the SHA-256 "
            "its manifest.json gives (incomplete or altered in transfer); ask Dukcapil to deliver it again"
        )
    review = review_of(conn, snapshot.snapshot_date, copy.sha256)
    try:
        with conn.transaction():  # savepoint: a held extract leaves nothing behind
            return _load(conn, snapshot.snapshot_date, copy, base, manifest, thresholds, review)
    except _Held as held:
        review = hold(conn, snapshot.snapshot_date, copy.sha256, held.found)
        log.warning(
            "dukcapil snapshot %s is held for a decision (review %d): %s",
            snapshot.snapshot_date,
            review.review_pk,
            describe(held.found),
        )
        return SnapshotHeld(review, snapshot.snapshot_date)


def _load(
    conn: psycopg.Connection,
    snapshot_date: dt.date,
    copy: rawstore.Kept,
    base: tuple | None,
    manifest: DukcapilManifest | None,
    thresholds: Thresholds,
    review: Review | None,
) -> SnapshotOutcome:
    pk = conn.execute(
        "INSERT INTO ingest.dukcapil_snapshot (snapshot_date, sha256, size_bytes, raw_path, manifest) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING snapshot_pk",
        (
            snapshot_date,
            copy.sha256,
            copy.size_bytes,
            str(copy.path),
            Jsonb(manifest.model_dump(mode="json")) if manifest else None,
        ),
    ).fetchone()[0]
    conn.execute("SELECT staging.ensure_snapshot_partitions(%s)", (pk,))
    base_pk, base_kept = (base[0], base[2] or 0) if base else (None, 0)
    differences = Differences(pk, base_kept)
    # the extract read and compared with the reference as it streams in: the stage's longest part
    reading = Progress(f"Dukcapil snapshot #{pk}: reading the extract", ["read_and_compare"])
    with timed(reading, "read_and_compare") as part:
        staged = stage_file(
            conn,
            copy.path,
            DUKCAPIL_PENDUDUK,
            target=sql.Identifier("staging", "dukcapil_penduduk"),
            key_columns={"snapshot_pk": pk},
            narrow=differences.find,
            raw_table=RAW,
        )
        part.rows = staged.rows_received
    if staged.code:
        # An unreadable civil-registry extract must stop the round: without it nothing can be checked.
        raise SnapshotConflict(
            f"Dukcapil snapshot {snapshot_date} is unusable: {staged.code} {staged.detail}"
        )
    if manifest is not None and manifest.row_count != staged.rows_received:
        raise SnapshotConflict(
            f"Dukcapil snapshot {snapshot_date} is refused: it has {staged.rows_received:,} data rows, its "
            f"manifest.json says {manifest.row_count:,}; ask Dukcapil to deliver it again"
        )
    diff = sort_differences(conn, pk, base_pk, differences.timings)
    if base_pk is not None:  # the first extract removes nothing
        found = judge(
            conn,
            thresholds,
            current=base_kept,
            last_rec=differences.last_rec,
            ends_with_newline=_ends_with_newline(copy.path),
            diff=diff,
        )
        if found is not None and not (review is not None and review.status == APPLY):
            raise _Held(found)
    diff = write_differences(conn, pk, base_pk, base_kept, differences.timings)
    kept = base_kept + diff["new"] + diff["changed"] - diff["closed"]
    conn.execute(
        "UPDATE ingest.dukcapil_snapshot SET rows_received = %s, rows_kept = %s, diff_base_pk = %s, diff = %s, "
        "review_pk = %s WHERE snapshot_pk = %s",
        (staged.rows_received, kept, base_pk, Jsonb(diff), review.review_pk if review else None, pk),
    )
    if base is None:  # the reference went from empty to the whole extract
        conn.execute("SELECT meta.analyze('ref.dukcapil')")  # as the owner: the round's role may not
    log.info(
        "dukcapil snapshot %s against the reference: %d new, %d changed, %d vanished, %d unusable, "
        "%d NIKs listed twice with different content (kept as they were)%s",
        snapshot_date,
        diff["new"],
        diff["changed"],
        diff["vanished"],
        diff["unusable"],
        diff["conflicting"],
        f"; applied on review {review.review_pk}" if review else "",
    )
    if diff["conflicting"]:
        log.warning(
            "dukcapil snapshot %s contradicts itself: %d NIKs are listed more than once with different "
            "content; their reference records are kept and the regions' rows for them are held "
            "(NIK_DUKCAPIL_CONFLICT). Report it to Dukcapil.",
            snapshot_date,
            diff["conflicting"],
        )
    if kept < staged.rows_received:
        log.warning(
            "dukcapil snapshot %s: %d of %d rows not taken (unusable, or a NIK listed more than once)",
            snapshot_date,
            staged.rows_received - kept,
            staged.rows_received,
        )
    return SnapshotOutcome(pk, snapshot_date, staged.rows_received, kept, diff=diff)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            return True
        f.seek(-1, 2)
        return f.read(1) in (b"\n", b"\r")


FIND = "ingest/dukcapil_diff.sql"
SORT = "ingest/dukcapil_sort.sql"
WRITE = "ingest/dukcapil_write.sql"
SUMMARY = "ingest/dukcapil_summary.sql"
# The comparison's tables are unlogged tables of schema scratch_dukcapil (migration 0043), not temporary
# ones: PostgreSQL may then read them in parallel. Created in the load's transaction (under its lock on
# ingest.dukcapil_snapshot), dropped before it commits; a held or failed load takes them with its rollback.
RAW = sql.Identifier("scratch_dukcapil", "raw_file")
SCRATCH_TABLES = "scratch_dukcapil.dk_diff, scratch_dukcapil.dk_usable, scratch_dukcapil.dk_conflict"


@dataclass
class Differences:
    """Finds the extract lines that differ from the reference while they are still raw (the
    `narrow` of stage_file): only those are staged. Leaves scratch_dukcapil.dk_diff for sort_differences."""

    snapshot_pk: int
    base_kept: int  # NIKs current in the reference before this extract
    timings: dict[str, float] = field(default_factory=dict)
    last_rec: int = 0  # the extract's last record (its last line, unless the file ends in blank lines)

    def find(self, conn: psycopg.Connection, raw: RawRecords) -> Narrowed:
        fragments = {
            "line_no": raw.line_no.as_string(conn),
            "has_value": raw.has_value.as_string(conn),
            "nik": raw.values["nik"].as_string(conn),
            "raw_fields": ", ".join(raw.raw[c].as_string(conn) for c in DUKCAPIL_PENDUDUK.columns),
            "header_line": str(int(raw.header_line)),
        }
        steps = {s.name: s for s in load(FIND, **{k: v.replace("%", "%%") for k, v in fragments.items()})}
        self._run(conn, steps["keyed"])
        self._run(conn, steps["diff"])
        blank, vanished, unmatched = conn.execute(steps["counts"].text).fetchone()
        data_rows = raw.records - raw.header_line - blank
        self.last_rec = raw.records
        # lines matched to a current NIK, against the current NIKs they matched: more lines than NIKs
        # means some NIK is listed more than once
        if data_rows - unmatched > self.base_kept - vanished:
            self._run(conn, steps["duplicated_lines"])
        conn.execute("DROP TABLE scratch_dukcapil.dk_keyed")
        conn.execute("ANALYZE scratch_dukcapil.dk_diff")
        keep = sql.SQL(
            "r.rec IN (SELECT rec FROM scratch_dukcapil.dk_diff WHERE NOT blank AND rec IS NOT NULL)"
        )
        return Narrowed(keep, data_rows)

    def _run(self, conn: psycopg.Connection, statement: Statement) -> None:
        started = time.perf_counter()
        with planner(conn, statement.planner):  # the statements' own profile, whatever the extract
            conn.execute(statement.text, {"snapshot_pk": self.snapshot_pk})
        self.timings[statement.name] = time.perf_counter() - started


def sort_differences(
    conn: psycopg.Connection, snapshot_pk: int, base_pk: int | None, timings: dict[str, float] | None = None
) -> dict[str, int]:
    """Type the staged differing lines and sort them (usable, conflicting NIKs), nothing written yet;
    counts of what differed."""
    # the differing lines were just staged: without statistics the planner takes the partition for empty
    conn.execute("SELECT meta.analyze(%s::regclass)", (f"staging.dukcapil_penduduk_s{int(snapshot_pk)}",))
    run(
        conn,
        SORT,
        {"snapshot_pk": snapshot_pk, "base_pk": base_pk},
        timings=timings,
        stage=f"Dukcapil snapshot #{snapshot_pk}: sorting its differences",
    )
    return _summary(conn)


def write_differences(
    conn: psycopg.Connection,
    snapshot_pk: int,
    base_pk: int | None,
    base_kept: int,
    timings: dict[str, float] | None = None,
) -> dict[str, int]:
    """Apply the sorted differences to the reference (holding `base_kept` current NIKs)."""
    differing = conn.execute("SELECT count(*) FROM scratch_dukcapil.dk_diff").fetchone()[0]
    # the usual extract changes a few NIKs: look them up by index rather than scan the reference
    params = {"snapshot_pk": snapshot_pk, "base_pk": base_pk}
    run(
        conn,
        WRITE,
        params,
        profiles=probe_when_small(differing, base_kept),
        timings=timings,
        stage=f"Dukcapil snapshot #{snapshot_pk}: writing {differing:,} differing lines",
    )
    summary = _summary(conn)
    conn.execute(f"DROP TABLE {SCRATCH_TABLES}")  # before the commit: no other session sees them
    return summary


def _summary(conn: psycopg.Connection) -> dict[str, int]:
    counted = conn.execute(statements(SUMMARY)["summary"])
    return dict(zip([c.name for c in counted.description], counted.fetchone(), strict=True))
