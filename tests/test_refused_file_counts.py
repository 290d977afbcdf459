"""A refused file's rows are counted from its lines, not from the CSV parse that failed, and a manifest
that lists a name twice is refused instead of being read by its last entry (issue 23, items 4 and 5).

Every row a region sends must end merged or rejected and be counted: a file COPY could not read is
counted by its physical lines (LF, CRLF or CR-only ends), so an unclosed quote or CR-only line ends
cannot hide rows from ringkasan.json, ditolak.csv's counts or `dtsen report`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os

import pytest

from dtsen.ingest import csvscan
from dtsen.report import format_round
from tests.factories import (
    ANGGOTA_HEADER,
    FAMILY_VALUES,
    KELUARGA_HEADER,
    KK1,
    KK2,
    build_round,
    make_submission,
    member,
    person,
    run_steps,
    validate,
)


def _keluarga() -> bytes:
    """One family row with a unique address: no two tests send byte-identical submissions."""
    row = f"TAMBAH,{KK1},3273011001,Jl. {os.urandom(6).hex()},2026-01-10,{FAMILY_VALUES},"
    return f"{KELUARGA_HEADER}\n{row}\n".encode()


def _members(count: int) -> list[str]:
    return [member("TAMBAH", f"32730141019{i:05d}", KK1, 2, "1990-01-01", 3) for i in range(1, count + 1)]


def _feedback(publish, round_id: str, folder: str) -> tuple[dict, list[dict]]:
    base = publish / "feedback" / round_id / folder
    ringkasan = json.loads((base / "ringkasan.json").read_text(encoding="utf-8"))
    with open(base / "ditolak.csv", newline="", encoding="utf-8") as fh:
        return ringkasan, list(csv.DictReader(fh))


@pytest.fixture
def landing(tmp_path, monkeypatch):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    return tmp_path / "landing"


def _assert_every_row_rejected(summary, publish, round_id: str, sub_id: str, received: dict[str, int]):
    """The round report, ringkasan.json and the report's lines agree: every row received, every one rejected."""
    line = summary.by_id()[sub_id]
    assert line.received == received
    assert line.rejected_rows == sum(received.values())
    ringkasan, ditolak = _feedback(publish, round_id, sub_id)
    assert ringkasan["status"] == "REJECTED"
    assert ringkasan["rows"] == {
        name: {"received": n, "merged": 0, "rejected": n} for name, n in received.items()
    }
    assert ringkasan["reasons"] == {"FILE_UNREADABLE": sum(received.values())}
    shown = next(text for text in format_round(summary) if sub_id in text)
    assert f"rows {', '.join(f'{k}={v}' for k, v in sorted(received.items()))};" in shown
    assert f"rejected rows {sum(received.values())};" in shown
    return ringkasan, ditolak


def test_an_unclosed_quote_on_line_7_of_20_rows_still_counts_all_20_as_received_and_rejected(
    db, landing, tmp_path, round_id
):
    rows = _members(20)
    rows[5] = rows[5].replace("Nama Orang", '"Nama Orang')  # line 7 of the file; never closed
    anggota = ("\n".join([ANGGOTA_HEADER, *rows]) + "\n").encode()
    make_submission(
        landing,
        "3273-kutip",
        folder_round=round_id,
        data_files={"keluarga.csv": _keluarga(), "anggota.csv": anggota},
    )
    publish = tmp_path / "publish"
    summary = validate(round_id, landing_root=landing, publish_root=publish)
    assert summary.by_id()["3273-kutip"].reason_code == "FILE_UNREADABLE"
    ringkasan, ditolak = _assert_every_row_rejected(
        summary, publish, round_id, "3273-kutip", {"anggota.csv": 20, "keluarga.csv": 1}
    )
    assert "baris 7" in ringkasan["keterangan"] and "tidak pernah ditutup" in ringkasan["keterangan"]
    assert any(r["file"] == "anggota.csv" and "baris 7" in r["message"] for r in ditolak)


def test_a_cr_only_file_of_28_rows_counts_28_and_is_told_its_lines_end_in_cr(db, landing, tmp_path, round_id):
    anggota = ("\r".join([ANGGOTA_HEADER, *_members(28)]) + "\r").encode()
    make_submission(
        landing,
        "3273-mac",
        folder_round=round_id,
        data_files={"keluarga.csv": _keluarga(), "anggota.csv": anggota},
    )
    publish = tmp_path / "publish"
    summary = validate(round_id, landing_root=landing, publish_root=publish)
    assert summary.by_id()["3273-mac"].reason_code == "FILE_UNREADABLE"
    ringkasan, ditolak = _assert_every_row_rejected(
        summary, publish, round_id, "3273-mac", {"anggota.csv": 28, "keluarga.csv": 1}
    )
    cr_only = csvscan.PROBLEMS["cr_line_ends"][1]
    assert ringkasan["keterangan"] == f"anggota.csv: {cr_only}"
    assert [r["message"] for r in ditolak if r["file"] == "anggota.csv"] == [cr_only]
    detail = db.execute(
        "SELECT f.detail FROM ingest.submission_file f JOIN ingest.submission s USING (submission_pk) "
        "WHERE s.submission_id = '3273-mac' AND f.file_name = 'anggota.csv'"
    ).fetchone()[0]
    assert "carriage return" in detail


def test_a_file_mixing_crlf_and_cr_only_line_ends_is_told_its_lines_end_in_cr(
    db, landing, tmp_path, round_id
):
    rows = _members(4)
    anggota = f"{ANGGOTA_HEADER}\r\n{rows[0]}\r\n{rows[1]}\r{rows[2]}\r{rows[3]}\r\n".encode()
    make_submission(
        landing,
        "3273-campur",
        folder_round=round_id,
        data_files={"keluarga.csv": _keluarga(), "anggota.csv": anggota},
    )
    publish = tmp_path / "publish"
    summary = validate(round_id, landing_root=landing, publish_root=publish)
    ringkasan, _ = _assert_every_row_rejected(
        summary, publish, round_id, "3273-campur", {"anggota.csv": 4, "keluarga.csv": 1}
    )
    assert ringkasan["keterangan"] == f"anggota.csv: {csvscan.PROBLEMS['cr_line_ends'][1]}"


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        (b'h\nunclosed "quote\nb\n\nc\n', 3),  # blank lines are no rows, as in an accepted file
        (b"\xef\xbb\xbf\n\nh\r\na\r\n ,\t,\r\nb", 2),  # blank lines before the header; no final newline
        (b"h\ra\r\r  \rb\r", 2),  # CR-only
        (b"h\r\na\rb\nc\r", 3),  # mixed line ends: every one ends a line
        (b'h\n"multi\nline"\n', 2),  # a refused file's quoted newline cannot be trusted: lines count
        (b"", 0),
        (b"h", 0),
    ],
)
def test_a_refused_file_counts_its_non_blank_physical_lines_after_the_header(tmp_path, body, rows):
    path = tmp_path / "f.csv"
    path.write_bytes(body)
    assert csvscan.count_data_rows(path) == rows


def test_a_cr_only_file_larger_than_a_read_chunk_is_counted_in_bounded_pieces(tmp_path):
    line = b"x" * 1000 + b"\r"
    path = tmp_path / "big.csv"
    path.write_bytes(b"h\r" + line * 3000)  # 3 MB without a single LF, a CR at every chunk edge or not
    assert csvscan.count_data_rows(path) == 3000
    path.write_bytes(b"h\r\n" + b"y" * (csvscan.CHUNK - 4) + b"\r\n" + b"z\r\n")  # CRLF split by a chunk edge
    assert csvscan.count_data_rows(path) == 2


def test_a_manifest_listing_a_file_twice_is_manifest_invalid_and_nothing_of_it_is_merged(fresh_db, tmp_path):
    round_id = "2026-Q1"
    (tmp_path / "raw").mkdir()
    landing = build_round(
        tmp_path,
        round_id,
        [person("A", "TAMBAH", KK1, 1)],
        [f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"],
    )
    files = {
        "keluarga.csv": f"{KELUARGA_HEADER}\nTAMBAH,{KK2},3273011001,Jl. Dua,2026-01-10,{FAMILY_VALUES},\n".encode(),
        "anggota.csv": f"{ANGGOTA_HEADER}\n{person('B', 'TAMBAH', KK2, 1)}\n".encode(),
    }
    folder = make_submission(landing, "3273-dua-kali", folder_round=round_id, data_files=files)
    right = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]
    text = json.dumps(manifest)[:-1] + (
        f', "files": {{"anggota.csv": "{"0" * 64}", "keluarga.csv": "{right["keluarga.csv"]}", '
        f'"anggota.csv": "{right["anggota.csv"]}"}}}}'
    )
    (folder / "manifest.json").write_text(text)

    publish = tmp_path / "publish"
    run_steps(round_id, landing_root=landing, publish_root=publish, raw_root=tmp_path / "raw", until="merge")
    status, code = fresh_db.execute(
        "SELECT status, reason_code FROM ingest.submission WHERE submission_id = '3273-dua-kali'"
    ).fetchone()
    assert (status, code) == ("REJECTED", "MANIFEST_INVALID")
    families = {str(r[0]) for r in fresh_db.execute("SELECT no_kk FROM registry.family")}
    assert families == {KK1}  # the other submission of the round was merged, this one not
    run_steps(
        round_id, landing_root=landing, publish_root=publish, raw_root=tmp_path / "raw", only=("feedback",)
    )
    ringkasan, ditolak = _feedback(publish, round_id, "3273-dua-kali")
    assert ringkasan["status"] == "REJECTED" and ringkasan["reasons"] == {"MANIFEST_INVALID": 2}
    assert "anggota.csv" in ringkasan["keterangan"] and "lebih dari sekali" in ringkasan["keterangan"]
    assert {r["reason"] for r in ditolak} == {"MANIFEST_INVALID"}


def test_a_duplicate_key_anywhere_in_the_manifest_is_manifest_invalid(tmp_path):
    from dtsen.ingest.landing import SubmissionDir
    from dtsen.ingest.manifest import check_manifest

    landing = (tmp_path / "landing").resolve()
    folder = make_submission(landing, "3273-x", folder_round="2026-Q2")
    text = (folder / "manifest.json").read_text()
    (folder / "manifest.json").write_text(text.replace('"round_id"', '"round_id": "2020-Q1", "round_id"', 1))
    check = check_manifest(landing, SubmissionDir("2026-Q2", "pemda", "3273-x", folder))
    assert check.code == "MANIFEST_INVALID" and "round_id" in check.detail
