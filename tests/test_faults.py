"""Faults that are not the data's: a lost connection is retried (never reported as bad data), two
writers of one report never collide, and a full disk is reported plainly with nothing half-written."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import psycopg
import pytest

from dtsen.errors import DataError
from dtsen.feedback import write_round_feedback
from dtsen.merge import MergeError, merge_round
from dtsen.storage import StorageFull, atomic_write
from dtsen.warehouse import engine
from tests.factories import (
    ANGGOTA_HEADER,
    FAMILY_VALUES,
    KELUARGA_HEADER,
    KK1,
    build_round,
    make_submission,
    person,
    stage,
    validate,
)

KEL = f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"


def _wait_until_blocked(observer: psycopg.Connection, pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = observer.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        observer.commit()
        if waiting and waiting[0] == "Lock":
            return
        time.sleep(0.05)
    raise AssertionError("the merge never reached the locked table")


def test_a_connection_lost_during_the_merge_is_retried_not_reported_as_bad_data(
    fresh_db, tmp_path, monkeypatch
):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    landing = build_round(tmp_path, "2026-Q1", [person("A", "TAMBAH", KK1, 1)], [KEL])
    summary = validate("2026-Q1", landing_root=landing, publish_root=tmp_path / "publish")
    url = engine.libpq_conninfo(engine.database_url())
    failure: list[BaseException] = []
    with psycopg.connect(url) as blocker, psycopg.connect(url) as merging:
        blocker.execute("LOCK TABLE registry.family IN ACCESS EXCLUSIVE MODE")  # the merge will wait here
        pid = merging.info.backend_pid

        def merge() -> None:
            try:
                merge_round(merging, summary.round_seq)
            except BaseException as exc:  # noqa: BLE001 (inspected below)
                failure.append(exc)

        worker = threading.Thread(target=merge)
        worker.start()
        with psycopg.connect(url, autocommit=True) as observer:
            _wait_until_blocked(observer, pid)
            observer.execute("SELECT pg_terminate_backend(%s)", (pid,))  # the connection dies mid-merge
        worker.join(60)
        blocker.rollback()
    assert failure and isinstance(failure[0], psycopg.OperationalError), failure
    assert not isinstance(failure[0], MergeError) and not isinstance(failure[0], DataError)
    # nothing was merged, the scratch tables it had made went with its transaction, and the retry
    # (a new connection) merges the round and leaves none either
    scratch = "SELECT count(*) FROM pg_tables WHERE schemaname = 'scratch_merge'"
    assert fresh_db.execute("SELECT count(*) FROM registry.person").fetchone() == (0,)
    assert fresh_db.execute(scratch).fetchone() == (0,)
    with psycopg.connect(url) as retry:
        merged = merge_round(retry, summary.round_seq)
    assert merged.changes["persons added"] == 1
    fresh_db.commit()
    assert fresh_db.execute(scratch).fetchone() == (0,)


def test_two_writers_of_one_submissions_feedback_never_collide(db, tmp_path, monkeypatch, round_id):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    landing = tmp_path / "landing"
    folder = make_submission(
        landing,
        "3273-twice",
        folder_round=round_id,
        data_files={"keluarga.csv": (KELUARGA_HEADER + "\n" + KEL + "\n").encode(), "anggota.csv": b""},
    )
    (folder / "anggota.csv").write_bytes(
        (ANGGOTA_HEADER + "\n" + person("A", "TAMBAH", KK1, 1) + "\n").encode()
    )
    summary = validate(round_id, landing_root=landing, publish_root=tmp_path / "publish")
    assert summary.submissions[0].reason_code == "CHECKSUM_MISMATCH"  # final: its feedback is written
    url = engine.libpq_conninfo(engine.database_url())
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def write_many() -> None:
        with psycopg.connect(url) as conn:
            start.wait()
            for _ in range(40):
                try:
                    write_round_feedback(conn, summary.round_seq, tmp_path / "publish")
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)
                    return

    writers = [threading.Thread(target=write_many) for _ in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert errors == []
    written = tmp_path / "publish" / "feedback" / round_id / "3273-twice"
    assert sorted(p.name for p in written.iterdir()) == ["ditolak.csv", "ringkasan.json"]  # no leftovers


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 KiB filesystem of the test's own (a real full disk: writes fail with ENOSPC)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_reported_with_the_path_and_leaves_nothing_half_written(
    db, tmp_path, monkeypatch, round_id, tiny_disk
):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    bad = [person("A", "TAMBAH", KK1, 1).replace(",1,3,2,", f",{9},3,2,") for _ in range(400)]
    landing = build_round(tmp_path, round_id, bad, [KEL])
    staged = stage(round_id, landing, threshold=0.2)  # no feedback yet: it is written to the full disk
    pk = staged.submissions[0]["submission_pk"]
    assert db.execute("SELECT status FROM ingest.submission WHERE submission_pk = %s", (pk,)).fetchone() == (
        "REJECTED",
    )  # by the quality gate: its feedback is final
    with pytest.raises(StorageFull) as full:
        write_round_feedback(db, staged.round_seq, tiny_disk)
    message = str(full.value)
    assert "no space left writing" in message and "ditolak.csv" in message and "bytes are free" in message
    assert [p.name for p in tiny_disk.rglob("*") if p.is_file()] == []  # no .partial left behind


def test_a_file_written_again_with_the_same_bytes_is_left_as_it_was(tmp_path):
    """A rerun writes its files again: one whose bytes are unchanged keeps its time (a reader that
    received it sees nothing new), one whose bytes changed is replaced; no temporary file stays."""
    same, changed = tmp_path / "pemisahan_kk.csv", tmp_path / "ringkasan.json"
    atomic_write(same, b"kode_wilayah,no_kk\n")
    atomic_write(changed, b"{}")
    os.utime(same, (1_000_000_000, 1_000_000_000))
    os.utime(changed, (1_000_000_000, 1_000_000_000))
    atomic_write(same, b"kode_wilayah,no_kk\n")
    atomic_write(changed, b'{"status": "MERGED"}')
    assert same.stat().st_mtime == 1_000_000_000 and same.read_bytes() == b"kode_wilayah,no_kk\n"
    assert changed.stat().st_mtime != 1_000_000_000 and changed.read_bytes() == b'{"status": "MERGED"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pemisahan_kk.csv", "ringkasan.json"]


def test_temporary_copies_a_killed_run_left_in_the_raw_store_are_swept(tmp_path):
    from dtsen.ingest import rawstore

    incoming = tmp_path / "raw" / "incoming"
    incoming.mkdir(parents=True)
    stale, live = incoming / ".anggota.csv.123.abc.partial", incoming / ".anggota.csv.456.def.partial"
    stale.write_bytes(b"nik,nama\n3273015506910004,Rahasia\n")
    live.write_bytes(b"being written")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    delivered = tmp_path / "anggota.csv"
    delivered.write_bytes(b"operasi,nik,no_kk\n")
    kept = rawstore.keep(tmp_path / "raw", delivered)
    assert kept.path.read_bytes() == b"operasi,nik,no_kk\n"
    assert not stale.exists() and live.exists()  # a live writer's copy is young: left alone
