"""Personal data stays where it must: not in the warehouse's server log, and the kept raw files and
reports are readable by the service's user and group only."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from dtsen.warehouse import localpg
from tests.factories import ANGGOTA_HEADER, KELUARGA_HEADER, KK1, make_submission, person, validate

SECRET_NIK, SECRET_NAME, SECRET_BIRTH = "3273015506910004", "Rahasia Sekali Binti Contoh", "1991-06-15"


def _server_log(server_url: str):
    cluster = localpg.cluster_for()
    url = make_url(server_url)
    if (url.host, url.port) != ("127.0.0.1", cluster.port) or not cluster.log_file.exists():
        pytest.skip("the warehouse is not the project's private cluster: its server log is not ours to read")
    return cluster.log_file


def test_a_refused_file_never_puts_its_rows_into_the_warehouse_server_log(
    db, server_url, tmp_path, monkeypatch, round_id
):
    log = _server_log(server_url)
    before = log.stat().st_size
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    secret_row = f"TAMBAH,{SECRET_NIK},{KK1},{SECRET_NAME},2,{SECRET_BIRTH},3,1,3,2,1,0,0,"
    bad_files = {
        "3273-ragged": secret_row + ",one,too,many",
        "3273-nul": secret_row.replace("Binti", "Bin\x00ti"),
        "3273-latin": secret_row.replace("Contoh", "Cont\u00f6h"),
    }
    landing = tmp_path / "landing"
    for sub_id, row in bad_files.items():
        anggota = (ANGGOTA_HEADER + "\n" + person("A", "TAMBAH", KK1, 1) + "\n" + row + "\n").encode(
            "latin-1" if sub_id == "3273-latin" else "utf-8"
        )
        keluarga = (KELUARGA_HEADER + "\n").encode()
        make_submission(
            landing,
            sub_id,
            folder_round=round_id,
            data_files={"keluarga.csv": keluarga, "anggota.csv": anggota},
        )
    summary = validate(round_id, landing_root=landing, publish_root=tmp_path / "publish")
    assert {s.reason_code for s in summary.submissions} == {"FILE_UNREADABLE"}
    written = log.read_bytes()[before:]
    assert written  # COPY did report the errors ...
    for secret in (SECRET_NIK, SECRET_NAME, SECRET_BIRTH, "Rahasia"):
        assert secret.encode() not in written, secret  # ... but never a row's values
    assert b"CONTEXT" not in written


def test_raw_copies_and_reports_are_not_world_readable(db, tmp_path, monkeypatch, round_id):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    landing = tmp_path / "landing"
    folder = make_submission(
        landing,
        "3273-modes",
        folder_round=round_id,
        data_files={"keluarga.csv": (KELUARGA_HEADER + "\n").encode(), "anggota.csv": b""},
    )
    (folder / "anggota.csv").write_bytes(b"changed after the manifest\n")  # refused: final, so reported
    validate(round_id, landing_root=landing, publish_root=tmp_path / "publish")
    kept = [p for p in (tmp_path / "raw").rglob("*") if p.is_file()]
    assert len(kept) == 2 and all(p.stat().st_mode & 0o777 == 0o440 for p in kept)
    assert all(p.stat().st_mode & 0o007 == 0 for p in (tmp_path / "raw").rglob("*"))
    reports = list((tmp_path / "publish").rglob("*"))
    assert reports and all(p.stat().st_mode & 0o007 == 0 for p in reports)
