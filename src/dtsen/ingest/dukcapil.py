"""Load a Dukcapil (civil-registry) snapshot: stage it raw, then keep its well-formed rows typed.

The latest snapshot on or before a round's cut-off is the authority on NIK existence, identity and
death for that round. Each snapshot gets its own partition, so loading one never rewrites another.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from dtsen.contract import DUKCAPIL_PENDUDUK
from dtsen.errors import DataError
from dtsen.ingest import rawstore
from dtsen.ingest.landing import list_dukcapil_snapshots
from dtsen.ingest.stage import stage_file
from dtsen.storage import file_sha256

log = logging.getLogger(__name__)

# Rows the typed reference keeps: well-formed NIK, identity present and valid, known life status.
# A NIK listed twice in one snapshot is ambiguous, so neither copy is trusted.
TYPED_INSERT = """
INSERT INTO ref.dukcapil_penduduk
    (snapshot_pk, nik, no_kk, nama, jenis_kelamin, tanggal_lahir, kode_wilayah, status_hidup, tanggal_meninggal)
SELECT snapshot_pk, nik::bigint,
       CASE WHEN meta.kk_problem(no_kk) IS NULL THEN no_kk::bigint END,
       nama, jenis_kelamin::smallint, tanggal_lahir::date, kode_wilayah, status_hidup,
       meta.to_date_or_null(tanggal_meninggal)
FROM (
    SELECT s.*, count(*) OVER (PARTITION BY nik) AS copies
    FROM staging.dukcapil_penduduk s
    WHERE snapshot_pk = %(snapshot_pk)s
      AND nik IS NOT NULL AND meta.nik_problem(nik) IS NULL
      AND nama IS NOT NULL
      AND jenis_kelamin IN ('1', '2')
      AND meta.is_iso_date(tanggal_lahir)
      AND status_hidup IN ('HIDUP', 'MENINGGAL')
) ok
WHERE copies = 1
"""


# New or changed rows against the previous snapshot (by date), kept for the merge (migration 0014).
CHANGES_INSERT = """
INSERT INTO ref.dukcapil_change (snapshot_pk, nik, nama, jenis_kelamin, tanggal_lahir, status_hidup, tanggal_meninggal)
SELECT d.snapshot_pk, d.nik, d.nama, d.jenis_kelamin, d.tanggal_lahir, d.status_hidup, d.tanggal_meninggal
FROM ref.dukcapil_penduduk d
WHERE d.snapshot_pk = %(snapshot_pk)s
  AND NOT EXISTS (
        SELECT 1 FROM ref.dukcapil_penduduk o
        WHERE o.snapshot_pk = %(base_pk)s AND o.nik = d.nik
          AND (o.nama, o.jenis_kelamin, o.tanggal_lahir, o.status_hidup)
              IS NOT DISTINCT FROM (d.nama, d.jenis_kelamin, d.tanggal_lahir, d.status_hidup))
"""


@dataclass
class SnapshotOutcome:
    snapshot_pk: int
    snapshot_date: dt.date
    rows_received: int
    rows_kept: int
    code: str | None = None
    detail: str = ""
    loaded_now: bool = True


class SnapshotConflict(DataError):
    pass


def ingest_latest_snapshot(
    conn: psycopg.Connection, landing_root: Path, raw_root: Path, as_of: dt.date
) -> SnapshotOutcome | None:
    """Load the newest snapshot dated on or before `as_of`; None when the landing zone has none."""
    snapshots, refused = list_dukcapil_snapshots(landing_root)
    for r in refused:
        log.warning("dukcapil snapshot refused: %s (%s)", r.entry, r.why)
    eligible = [s for s in snapshots if s.snapshot_date <= as_of]
    if not eligible:
        return None
    snapshot = eligible[-1]
    conn.execute("LOCK TABLE ingest.dukcapil_snapshot IN SHARE ROW EXCLUSIVE MODE")
    row = conn.execute(
        "SELECT snapshot_pk, sha256, rows_received FROM ingest.dukcapil_snapshot WHERE snapshot_date = %s",
        (snapshot.snapshot_date,),
    ).fetchone()
    if row is not None:
        pk, loaded_sha, received = row
        if file_sha256(snapshot.path)[0] != loaded_sha:
            raise SnapshotConflict(
                f"Dukcapil snapshot {snapshot.snapshot_date} changed after it was loaded; "
                "deliver a corrected extract under a new date folder"
            )
        kept = conn.execute(
            "SELECT count(*) FROM ref.dukcapil_penduduk WHERE snapshot_pk = %s", (pk,)
        ).fetchone()[0]
        return SnapshotOutcome(pk, snapshot.snapshot_date, received or 0, kept, loaded_now=False)
    # hashed as it is copied, and staged from the copy: the bytes loaded are the bytes recorded
    copy = rawstore.keep(raw_root, snapshot.path)
    pk = conn.execute(
        "INSERT INTO ingest.dukcapil_snapshot (snapshot_date, sha256, size_bytes, raw_path) VALUES (%s, %s, %s, %s) "
        "RETURNING snapshot_pk",
        (snapshot.snapshot_date, copy.sha256, copy.size_bytes, str(copy.path)),
    ).fetchone()[0]
    conn.execute("SELECT staging.ensure_snapshot_partitions(%s)", (pk,))
    staged = stage_file(
        conn,
        copy.path,
        DUKCAPIL_PENDUDUK,
        target=sql.Identifier("staging", "dukcapil_penduduk"),
        key_columns={"snapshot_pk": pk},
    )
    if staged.code:
        # An unreadable civil-registry extract must stop the round: without it nothing can be checked.
        raise SnapshotConflict(
            f"Dukcapil snapshot {snapshot.snapshot_date} is unusable: {staged.code} {staged.detail}"
        )
    kept = conn.execute(TYPED_INSERT, {"snapshot_pk": pk}).rowcount
    conn.execute(
        "UPDATE ingest.dukcapil_snapshot SET rows_received = %s WHERE snapshot_pk = %s",
        (staged.rows_received, pk),
    )
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("ref", f"dukcapil_penduduk_s{pk}")))
    base = conn.execute(
        "SELECT snapshot_pk FROM ingest.dukcapil_snapshot WHERE snapshot_date < %s "
        "ORDER BY snapshot_date DESC LIMIT 1",
        (snapshot.snapshot_date,),
    ).fetchone()
    if base is not None:  # the first snapshot has no base: a first merge reads it whole anyway
        changed = conn.execute(CHANGES_INSERT, {"snapshot_pk": pk, "base_pk": base[0]}).rowcount
        conn.execute(
            "UPDATE ingest.dukcapil_snapshot SET diff_base_pk = %s WHERE snapshot_pk = %s", (base[0], pk)
        )
        log.info("dukcapil snapshot %s: %d rows new or changed", snapshot.snapshot_date, changed)
    if kept < staged.rows_received:
        log.warning(
            "dukcapil snapshot %s: %d of %d rows unusable (malformed or duplicated NIK, bad identity)",
            snapshot.snapshot_date,
            staged.rows_received - kept,
            staged.rows_received,
        )
    return SnapshotOutcome(pk, snapshot.snapshot_date, staged.rows_received, kept)
