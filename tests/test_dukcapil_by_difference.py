"""The Dukcapil reference is kept by difference: one typed row per NIK and period, only what changed
between two extracts is written and validated, and any earlier snapshot can still be read."""

from __future__ import annotations

import datetime as dt
import shutil

import psycopg
import pytest

from dtsen.contract import FileKind
from dtsen.ingest.dukcapil import SnapshotConflict, ingest_latest_snapshot
from dtsen.ingest.dukcapil_guard import Thresholds
from dtsen.validate.round import validate_snapshot
from dtsen.validate.run import Batch
from dtsen.warehouse import engine
from dtsen.warehouse.migrate import MIGRATIONS_DIR, migrate
from tests.factories import make_dukcapil

HEADER = "nik,no_kk,nama,jenis_kelamin,tanggal_lahir,kode_wilayah,status_hidup,tanggal_meninggal"
SITI = "3273014101900001,3273010101200001,Siti Aminah,2,1990-01-01,3273011001,HIDUP,"
BUDI = "3273010505600002,3273010101200001,Budi,1,1960-05-05,3273011001,HIDUP,"
BUDI_DEAD = "3273010505600002,3273010101200001,Budi,1,1960-05-05,3273011001,MENINGGAL,2026-05-02"
ANAK = "3273011212120003,3273010101200001,Anak,1,2012-12-12,3273011001,HIDUP,"
EKO = "3273010202700005,3273010101200009,Eko,1,1970-02-02,3273011001,HIDUP,"
FAJAR = "3273010303800006,3273010101200009,Fajar,1,1980-03-03,3273011001,HIDUP,"
FAJAR_TWIN = "3273010303800006,3273010101200009,Fajar Lain,1,1980-03-03,3273011001,HIDUP,"
BAD_SEX = "3273010707070009,3273010101200009,Jaka,7,2007-07-07,3273011001,HIDUP,"
SHORT_NIK = "327301070707000,3273010101200009,Pendek,1,2007-07-07,3273011001,HIDUP,"


def extract(*lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


def load(conn, landing, raw, day: str):
    """Load the snapshot of `day` and validate it; with the lines its validation was given."""
    with conn.transaction():
        # these worlds are tiny: any removal is a large share (the guard has tests of its own)
        outcome = ingest_latest_snapshot(conn, landing, raw, dt.date.fromisoformat(day), Thresholds(1.0, 1))
        validate_snapshot(conn, outcome.snapshot_pk)
    batch = Batch(FileKind.DUKCAPIL_PENDUDUK, snapshot_pk=outcome.snapshot_pk).sql()
    outcome.lines_validated = [n for (n,) in conn.execute(f"SELECT line_no FROM ({batch}) b ORDER BY 1")]
    return outcome


def current(conn, snapshot_pk: int) -> dict[int, str]:
    return dict(
        conn.execute("SELECT nik, status_hidup FROM ref.dukcapil_as_of(%s)", (snapshot_pk,)).fetchall()
    )


def test_a_new_extract_writes_and_validates_only_what_changed(fresh_db, tmp_path):
    db, landing, raw = fresh_db, tmp_path / "landing", tmp_path / "raw"
    make_dukcapil(landing, "2026-03-28", extract(SITI, BUDI, ANAK, EKO, FAJAR))
    first = load(db, landing, raw, "2026-03-31")
    assert (first.rows_received, first.rows_kept, first.lines_validated) == (5, 5, [2, 3, 4, 5, 6])
    # next quarter: Budi died, Anak vanished, Fajar is listed twice with different content, one new
    # person, two bad lines
    make_dukcapil(
        landing,
        "2026-06-27",
        extract(
            SITI,
            BUDI_DEAD,
            EKO,
            FAJAR,
            FAJAR_TWIN,
            BAD_SEX,
            SHORT_NIK,
            ANAK.replace("3273011212120003", "3273015505150004")
            .replace("2012-12-12", "2015-05-15")
            .replace(",1,", ",2,", 1),
        ),
    )
    second = load(db, landing, raw, "2026-06-30")
    # the comparison's scratch tables (unlogged, for parallel plans) are dropped before the load commits
    assert db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'scratch_dukcapil'").fetchone() == (
        0,
    )
    changes = db.execute(
        "SELECT coalesce(nik::text, '-'), change, coalesce(line_no, 0), status_hidup FROM ref.dukcapil_change "
        "WHERE snapshot_pk = %s ORDER BY 2, 1, 3",
        (second.snapshot_pk,),
    ).fetchall()
    assert changes == [
        ("3273010505600002", "CHANGED", 3, "MENINGGAL"),
        ("3273010303800006", "CONFLICTING", 5, None),  # listed twice: trusted in neither copy
        ("3273015505150004", "NEW", 9, "HIDUP"),
        ("-", "UNUSABLE", 8, None),  # a 15-digit NIK
        ("3273010707070009", "UNUSABLE", 7, None),  # jenis_kelamin 7
        ("3273011212120003", "VANISHED", 0, None),
    ]
    # Siti and Eko did not change: their rows were neither rewritten nor validated again
    assert (
        db.execute(
            "SELECT count(*) FROM ref.dukcapil WHERE nik IN (3273014101900001, 3273010202700005)"
        ).fetchone()[0]
        == 2
    )
    suite = dict(
        (r["rule_id"], r["failed"])
        for r in db.execute(
            "SELECT result FROM quality.snapshot_suite_result WHERE snapshot_pk = %s", (second.snapshot_pk,)
        ).fetchone()[0]
    )
    assert second.lines_validated == [3, 5, 6, 7, 8, 9]  # the lines that differ, not all 8
    assert suite["dukcapil_penduduk.07"] == 1  # NIK_FORMAT: the short NIK
    assert suite["dukcapil_penduduk.11"] == 1  # jenis_kelamin 7
    flagged = db.execute(
        "SELECT rows_received, rows_kept, diff FROM ingest.dukcapil_snapshot WHERE snapshot_pk = %s",
        (second.snapshot_pk,),
    ).fetchone()
    assert flagged[:2] == (8, 5)  # Siti, Budi, Eko, the new person, and Fajar's record kept as it was
    assert flagged[2] == {
        "new": 1,
        "changed": 1,
        "vanished": 1,
        "unusable": 2,
        "identical_copies": 0,
        "conflicting": 1,
        "conflicting_lines": 2,
        "closed": 2,
    }
    # each snapshot still reads as it was delivered
    assert current(db, first.snapshot_pk) == {
        3273014101900001: "HIDUP",
        3273010505600002: "HIDUP",
        3273011212120003: "HIDUP",
        3273010202700005: "HIDUP",
        3273010303800006: "HIDUP",
    }
    assert current(db, second.snapshot_pk) == {
        3273014101900001: "HIDUP",
        3273010505600002: "MENINGGAL",
        3273010202700005: "HIDUP",
        3273010303800006: "HIDUP",  # the extract contradicts itself on Fajar: his record stands
        3273015505150004: "HIDUP",
    }
    # the same extract again changes nothing
    make_dukcapil(
        landing, "2026-09-26", (landing / "reference/dukcapil/2026-06-27/penduduk.csv").read_bytes()
    )
    third = load(db, landing, raw, "2026-09-30")
    assert (
        db.execute(
            "SELECT count(*) FILTER (WHERE change NOT IN ('UNUSABLE', 'CONFLICTING')) FROM ref.dukcapil_change "
            "WHERE snapshot_pk = %s",
            (third.snapshot_pk,),
        ).fetchone()[0]
        == 0
    )
    assert third.rows_kept == 5


def test_an_extract_older_than_the_reference_is_refused(fresh_db, tmp_path):
    db, landing, raw = fresh_db, tmp_path / "landing", tmp_path / "raw"
    make_dukcapil(landing, "2026-06-27", extract(SITI))
    load(db, landing, raw, "2026-06-30")
    shutil.rmtree(landing / "reference/dukcapil/2026-06-27")
    make_dukcapil(landing, "2026-03-28", extract(SITI, BUDI))
    with pytest.raises(SnapshotConflict, match="older than snapshot 2026-06-27"):
        load(db, landing, raw, "2026-06-30")


def test_typed_snapshots_of_an_older_warehouse_become_validity_ranges(scratch_database, tmp_path):
    before = tmp_path / "migrations-0019"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0020":
            shutil.copy(path, before / path.name)
    url = scratch_database("m0020", empty=True)
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        migrate(conn, directory=before)
        snapshots = [
            conn.execute(
                "INSERT INTO ingest.dukcapil_snapshot (snapshot_date, sha256, size_bytes, rows_received) "
                "VALUES (%s, 'x', 1, 2) RETURNING snapshot_pk",
                (day,),
            ).fetchone()[0]
            for day in ("2026-03-28", "2026-06-27", "2026-09-27")
        ]
        for pk in snapshots:
            conn.execute("SELECT staging.ensure_snapshot_partitions(%s)", (pk,))
        typed = {  # nik -> status per snapshot (None: absent)
            1101010101900001: ("HIDUP", "HIDUP", "MENINGGAL"),
            1101010101900002: ("HIDUP", None, "HIDUP"),
            1101010101900003: (None, "HIDUP", "HIDUP"),
        }
        for nik, statuses in typed.items():
            for pk, status in zip(snapshots, statuses, strict=True):
                if status:
                    conn.execute(
                        "INSERT INTO ref.dukcapil_penduduk (snapshot_pk, nik, no_kk, nama, jenis_kelamin, "
                        "tanggal_lahir, kode_wilayah, status_hidup) VALUES (%s, %s, NULL, 'N', 1, '1990-01-01', "
                        "'1101010001', %s)",
                        (pk, nik, status),
                    )
        conn.commit()
        migrate(conn)
        ranges = conn.execute(
            "SELECT nik, valid_from, valid_to, status_hidup FROM ref.dukcapil ORDER BY nik, valid_from"
        ).fetchall()
        s1, s2, s3 = snapshots
        assert ranges == [
            (1101010101900001, s1, s3, "HIDUP"),
            (1101010101900001, s3, None, "MENINGGAL"),
            (1101010101900002, s1, s2, "HIDUP"),
            (1101010101900002, s3, None, "HIDUP"),
            (1101010101900003, s2, None, "HIDUP"),
        ]
        for pk, column in zip(snapshots, range(3), strict=True):
            assert current(conn, pk) == {nik: s[column] for nik, s in typed.items() if s[column]}


def test_staging_older_than_the_retention_is_dropped_and_history_still_reads(fresh_db, tmp_path):
    from dtsen.ingest.retention import prune_staging

    db, landing, raw = fresh_db, tmp_path / "landing", tmp_path / "raw"
    snapshots = []
    for day, people in (
        ("2026-03-28", (SITI, BUDI)),
        ("2026-06-27", (SITI, BUDI_DEAD)),
        ("2026-09-26", (SITI,)),
    ):
        make_dukcapil(landing, day, extract(*people))
        snapshots.append(load(db, landing, raw, day).snapshot_pk)
    rounds = []
    for round_id, status in (
        ("2026-Q1", "PUBLISHED"),
        ("2026-Q2", "MERGED"),
        ("2026-Q3", "MERGED"),
        ("2026-Q4", "OPEN"),
    ):
        seq = db.execute(
            "INSERT INTO ingest.round (round_id, status) VALUES (%s, %s) RETURNING round_seq",
            (round_id, status),
        ).fetchone()[0]
        db.execute("SELECT staging.ensure_round_partitions(%s::smallint)", (seq,))
        rounds.append(seq)
    with db.transaction():
        pruned = prune_staging(db, 2)
    assert (pruned.rounds, pruned.snapshots) == ([rounds[0]], [snapshots[0]])
    left = {name for (name,) in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'staging'")}
    assert f"pemda_anggota_r{rounds[0]}" not in left and f"dukcapil_penduduk_s{snapshots[0]}" not in left
    assert {f"pemda_anggota_r{r}" for r in rounds[1:]} | {
        f"dukcapil_penduduk_s{s}" for s in snapshots[1:]
    } <= left
    # the reference's history does not live in staging
    assert current(db, snapshots[0]) == {3273014101900001: "HIDUP", 3273010505600002: "HIDUP"}
    assert current(db, snapshots[1]) == {3273014101900001: "HIDUP", 3273010505600002: "MENINGGAL"}
    with db.transaction():
        assert prune_staging(db, 2) == type(pruned)([], [])  # once only
