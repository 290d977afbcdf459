"""Registering and staging a round (its open_round and stage_and_validate steps) against the real
warehouse: idempotent, nothing lost or doubled."""

from __future__ import annotations

import hashlib
import json

import pytest

from dtsen.ingest.dukcapil import SnapshotConflict
from dtsen.ingest.register import RoundOrderError, ensure_round, round_reference_date
from tests.factories import ANGGOTA, KELUARGA, make_dukcapil, make_submission, stage

DUKCAPIL = (
    b"nik,no_kk,nama,jenis_kelamin,tanggal_lahir,kode_wilayah,status_hidup,tanggal_meninggal\n"
    b"3273014101900001,3273010101200001,Siti Aminah,2,1990-01-01,3273011001,HIDUP,\n"
    b"3273010505600002,3273010101200001,Budi,1,1960-05-05,3273011001,MENINGGAL,2026-04-02\n"
    b"3273010505600002,3273010101200001,Budi Dua,1,1960-05-05,3273011001,HIDUP,\n"
    b"327301050560000,3273010101200001,Rusak,1,1960-05-05,3273011001,HIDUP,\n"
    b"3273011212120003,3273010101200001,Anak,1,2012-12-12,3273011001,HIDUP,\n"
)


@pytest.fixture
def landing(tmp_path, monkeypatch):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    root = tmp_path / "landing"
    root.mkdir()
    return root


def _round_id(db) -> str:
    """A fresh round id later than any registered in this session's warehouse."""
    latest = db.execute("SELECT max(round_id) FROM ingest.round").fetchone()[0] or "2030-Q4"
    year, q = int(latest[:4]), int(latest[-1])
    return f"{year + (q == 4)}-Q{q % 4 + 1}"


def test_round_is_staged_once_even_when_run_twice(fresh_db, landing):
    db = fresh_db  # its own reference: what an extract keeps depends on the reference before it
    round_id = _round_id(db)
    files = {"keluarga.csv": KELUARGA.replace(b"2026-05-01", b"2026-05-03"), "anggota.csv": ANGGOTA}
    make_submission(landing, "3273-a", folder_round=round_id, data_files=files)
    # the round's own cut-off: the shared warehouse refuses an extract older than one already loaded
    make_dukcapil(landing, round_reference_date(round_id).isoformat(), DUKCAPIL)
    first = stage(round_id, landing, validate=False)
    second = stage(round_id, landing, validate=False)
    assert [s["status"] for s in first.submissions] == ["STAGED"]
    assert first.submissions[0]["processed_now"] and not second.submissions[0]["processed_now"]
    pk = first.submissions[0]["submission_pk"]
    rows = db.execute(
        "SELECT (SELECT count(*) FROM staging.pemda_keluarga WHERE submission_pk = %(pk)s),"
        "       (SELECT count(*) FROM staging.pemda_anggota WHERE submission_pk = %(pk)s)",
        {"pk": pk},
    ).fetchone()
    assert rows == (1, 1)
    assert second.opened["dukcapil_snapshot_pk"] == first.opened["dukcapil_snapshot_pk"]
    assert first.opened["dukcapil_loaded_now"] and not second.opened["dukcapil_loaded_now"]


def test_dukcapil_snapshot_keeps_only_unambiguous_well_formed_rows(fresh_db, landing):
    db = fresh_db  # its own reference: what an extract keeps depends on the reference before it
    round_id = _round_id(db)
    make_dukcapil(landing, round_reference_date(round_id).isoformat(), DUKCAPIL)
    (landing / round_id).mkdir()
    result = stage(round_id, landing, validate=False).opened
    assert result["dukcapil_rows"] == 5
    assert result["dukcapil_rows_kept"] == 2  # duplicated NIK (both copies) and a 15-digit NIK dropped
    kept = db.execute(
        "SELECT nik, status_hidup FROM ref.dukcapil_as_of(%s) ORDER BY nik",
        (result["dukcapil_snapshot_pk"],),
    ).fetchall()
    assert kept == [(3273011212120003, "HIDUP"), (3273014101900001, "HIDUP")]


def test_a_snapshot_changed_after_loading_is_refused(fresh_db, landing):
    db = fresh_db  # its own reference: what an extract keeps depends on the reference before it
    round_id = _round_id(db)
    path = make_dukcapil(landing, round_reference_date(round_id).isoformat(), DUKCAPIL)
    (landing / round_id).mkdir()
    stage(round_id, landing, validate=False)
    path.write_bytes(DUKCAPIL + b"3273014101900009,3273010101200001,X,2,1990-01-01,3273011001,HIDUP,\n")
    with pytest.raises(SnapshotConflict, match="changed after it was loaded"):
        stage(round_id, landing, validate=False)


def test_resubmitted_identical_files_are_duplicate_submission(db, landing):
    round_id = _round_id(db)
    # content of this test's own: byte-identical files already processed earlier would be duplicates too
    files = {"keluarga.csv": KELUARGA.replace(b"2026-05-01", b"2026-05-02"), "anggota.csv": ANGGOTA}
    make_submission(landing, "3273-1-first", folder_round=round_id, data_files=files)
    make_submission(landing, "3273-2-again", folder_round=round_id, data_files=files)
    result = stage(round_id, landing, validate=False)
    by_id = {s["submission_id"]: s for s in result.submissions}
    assert by_id["3273-2-again"]["status"] == "REJECTED"
    assert by_id["3273-2-again"]["reason_code"] == "DUPLICATE_SUBMISSION"
    assert by_id["3273-1-first"]["status"] == "STAGED"
    staged = db.execute(
        "SELECT count(*) FROM staging.pemda_anggota WHERE submission_pk = %s",
        (by_id["3273-2-again"]["submission_pk"],),
    ).fetchone()[0]
    assert staged == 0


def test_checksum_mismatch_and_bad_manifest_reject_the_submission(db, landing):
    round_id = _round_id(db)
    lying = make_submission(landing, "3273-lies", folder_round=round_id)
    (lying / "anggota.csv").write_bytes(ANGGOTA + b"UBAH,3273014101900002,3273010101200001\n")
    make_submission(landing, "3273-wronground", folder_round=round_id, round_id="2020-Q1")
    result = {s["submission_id"]: s for s in stage(round_id, landing, validate=False).submissions}
    assert result["3273-lies"]["reason_code"] == "CHECKSUM_MISMATCH"
    assert result["3273-wronground"]["reason_code"] == "MANIFEST_INVALID"
    # the lying file's bytes are kept for tracing, by content
    raw = db.execute(
        "SELECT raw_path, sha256 FROM ingest.submission_file WHERE submission_pk = %s AND file_name = 'anggota.csv'",
        (result["3273-lies"]["submission_pk"],),
    ).fetchone()
    with open(raw[0], "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == raw[1]


def test_an_unreadable_file_rejects_its_submission_but_rows_are_still_counted(db, landing):
    round_id = _round_id(db)
    bad = KELUARGA.replace(b"UBAH", "UBAH\u00e9".encode("latin-1"))
    make_submission(
        landing,
        "3273-latin1",
        folder_round=round_id,
        data_files={"keluarga.csv": bad, "anggota.csv": ANGGOTA},
    )
    sub = stage(round_id, landing, validate=False).submissions[0]
    assert (sub["status"], sub["reason_code"]) == ("REJECTED", "FILE_UNREADABLE")
    assert sub["file_codes"] == {"keluarga.csv": "FILE_UNREADABLE"}
    assert sub["rows_received"] == {"keluarga.csv": 1, "anggota.csv": 1}
    detail = db.execute(
        "SELECT detail FROM ingest.submission WHERE submission_pk = %s", (sub["submission_pk"],)
    ).fetchone()[0]
    assert "3273" not in json.dumps(detail)  # no numbers from the file in operator text


def test_rounds_must_be_registered_in_order(db):
    latest = _round_id(db)
    with db.transaction():
        ensure_round(db, latest)
    with pytest.raises(RoundOrderError), db.transaction():
        ensure_round(db, "2026-Q1")


def test_reference_date_is_the_quarter_end():
    assert round_reference_date("2026-Q1").isoformat() == "2026-03-31"
    assert round_reference_date("2026-Q4").isoformat() == "2026-12-31"
