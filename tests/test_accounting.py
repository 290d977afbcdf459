"""Every row a region sends is accounted for, also when its file or its whole submission is refused,
and everything the landing zone holds gets feedback, however it is refused."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os

import pytest

from dtsen.report import format_round
from dtsen.storage import file_sha256
from tests.factories import (
    ANGGOTA_HEADER,
    FAMILY_VALUES,
    KELUARGA_HEADER,
    KK1,
    RewrittenOnReopen,
    build_round,
    make_submission,
    member,
    person,
    validate,
)

KEL = f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"


def _csv(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def _files(anggota: list[str], keluarga: list[str] | None = None) -> dict[str, bytes]:
    """A pemda submission's files; the address is unique, so no two tests send byte-identical files
    (those would be DUPLICATE_SUBMISSION across the session's warehouse)."""
    unique = KEL.replace("Jl. Satu", f"Jl. {os.urandom(6).hex()}")
    return {
        "keluarga.csv": _csv(KELUARGA_HEADER, keluarga or [unique]),
        "anggota.csv": _csv(ANGGOTA_HEADER, anggota),
    }


def _feedback(publish, round_id: str, folder: str) -> tuple[dict, list[dict]]:
    base = publish / "feedback" / round_id / folder
    ringkasan = json.loads((base / "ringkasan.json").read_text(encoding="utf-8"))
    with open(base / "ditolak.csv", newline="", encoding="utf-8") as fh:
        return ringkasan, list(csv.DictReader(fh))


def _refused_folders(publish, round_id: str) -> dict[str, tuple[dict, list[dict]]]:
    base = publish / "feedback" / round_id / "~refused"
    return {p.name: _feedback(publish, round_id, f"~refused/{p.name}") for p in sorted(base.iterdir())}


@pytest.fixture
def landing(tmp_path, monkeypatch):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    return tmp_path / "landing"


def test_a_submission_refused_whole_still_accounts_for_every_row_it_sent(db, landing, tmp_path, round_id):
    rows = [person("A", "TAMBAH", KK1, 1), person("C", "TAMBAH", KK1, 3)]
    lying = make_submission(landing, "3273-lies", folder_round=round_id, data_files=_files(rows))
    (lying / "anggota.csv").write_bytes(_csv(ANGGOTA_HEADER, [*rows, person("B", "TAMBAH", KK1, 3)]))
    make_submission(
        landing, "3273-wrongid", folder_round=round_id, data_files=_files(rows[:1]), round_id="2020-Q1"
    )
    make_submission(
        landing,
        "3273-nonik",
        folder_round=round_id,
        data_files={
            "keluarga.csv": _csv(KELUARGA_HEADER, [KEL]),
            "anggota.csv": b"operasi,no_kk\nTAMBAH,1\nUBAH,2\n",
        },
    )
    publish = tmp_path / "publish"
    validate(round_id, landing_root=landing, publish_root=publish)

    ringkasan, ditolak = _feedback(publish, round_id, "3273-lies")
    assert ringkasan["status"] == "REJECTED"
    assert ringkasan["rows"] == {
        "anggota.csv": {"received": 3, "merged": 0, "rejected": 3},
        "keluarga.csv": {"received": 1, "merged": 0, "rejected": 1},
    }
    assert ringkasan["reasons"] == {"CHECKSUM_MISMATCH": 4}  # counted per row
    assert {(r["file"], r["reason"]) for r in ditolak} == {
        ("anggota.csv", "CHECKSUM_MISMATCH"),
        ("keluarga.csv", "CHECKSUM_MISMATCH"),
    }
    assert "anggota.csv" in ringkasan["keterangan"]

    ringkasan, _ = _feedback(publish, round_id, "3273-wrongid")
    assert ringkasan["reasons"] == {"MANIFEST_INVALID": 2} and "round_id" in ringkasan["keterangan"]
    assert ringkasan["rows"]["anggota.csv"]["received"] == 1

    ringkasan, ditolak = _feedback(publish, round_id, "3273-nonik")
    assert ringkasan["rows"]["anggota.csv"] == {"received": 2, "merged": 0, "rejected": 2}
    assert ringkasan["reasons"] == {"FILE_MISSING_COLUMN": 3}
    line = next(r for r in ditolak if r["file"] == "anggota.csv" and r["line"] == "")
    assert "nik" in line["message"]  # names the missing column


def test_the_same_submission_id_under_two_sources_keeps_both_reports_apart(db, landing, tmp_path, round_id):
    make_submission(
        landing, "X-2026", folder_round=round_id, data_files=_files([person("A", "TAMBAH", KK1, 1)])
    )
    bps = b"no_kk,kode_wilayah,tanggal_survei\n3273010101200001,3273011001,2026-01-05\n"
    make_submission(landing, "X-2026", folder="bps", folder_round=round_id, data_files={"keluarga.csv": bps})
    publish = tmp_path / "publish"
    summary = validate(round_id, landing_root=landing, publish_root=publish)

    assert [(s.source, s.submission_id) for s in summary.submissions] == [("pemda", "X-2026")]
    assert db.execute(
        "SELECT count(*) FROM ingest.submission s JOIN ingest.round r USING (round_seq) WHERE r.round_id = %s",
        (round_id,),
    ).fetchone() == (1,)
    refused = _refused_folders(publish, round_id)
    assert len(refused) == 1
    ((name, (ringkasan, ditolak)),) = refused.items()
    assert name.startswith("bps-X-2026-")
    assert ringkasan["status"] == "REJECTED" and ringkasan["reasons"] == {"MANIFEST_INVALID": 1}
    assert ringkasan["rows"] == {"keluarga.csv": {"received": 1, "merged": 0, "rejected": 1}}
    assert "pemda" in ringkasan["keterangan"] and ditolak[0]["reason"] == "MANIFEST_INVALID"
    assert any("REFUSED" in line and "bps/X-2026" in line for line in format_round(summary))
    # running the round again changes nothing and reports the same
    again = validate(round_id, landing_root=landing, publish_root=publish)
    assert len(again.refused) == 1 and _refused_folders(publish, round_id).keys() == refused.keys()


def test_refused_folders_get_feedback_under_a_safe_name_and_a_line_in_the_summary(
    db, landing, tmp_path, round_id
):
    make_submission(
        landing, "3273-ok", folder_round=round_id, data_files=_files([person("A", "TAMBAH", KK1, 1)])
    )
    pemda = landing / round_id / "pemda"
    badly_named = make_submission(
        landing, "tmp", folder_round=round_id, data_files=_files([person("C", "TAMBAH", KK1, 1)])
    )
    badly_named.rename(pemda / "kiriman bulan\nmei")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "anggota.csv").write_text("rahasia\n")
    os.symlink(outside, pemda / "3273-link")
    publish = tmp_path / "publish"
    summary = validate(round_id, landing_root=landing, publish_root=publish)

    refused = _refused_folders(publish, round_id)
    assert len(refused) == 2 and len(summary.refused) == 2
    by_kind = {("link" if "link" in name else "name"): value for name, value in refused.items()}
    ringkasan, _ = by_kind["link"]
    assert ringkasan["reasons"] == {"MANIFEST_INVALID": 0} and ringkasan["rows"] == {}
    assert "tautan" in ringkasan["keterangan"]
    ringkasan, ditolak = by_kind["name"]
    assert ringkasan["rows"]["anggota.csv"]["received"] == 1  # a folder inside the zone: its rows are counted
    assert "Nama folder" in ringkasan["keterangan"] and {r["file"] for r in ditolak} == {
        "anggota.csv",
        "keluarga.csv",
    }
    assert all("\n" not in name and name.startswith("pemda-") for name in refused)
    lines = format_round(summary)
    assert sum("REFUSED" in line for line in lines) == 2
    assert any("kiriman bulan\\nmei" in line for line in lines)  # printed escaped


def test_a_changed_redelivery_under_an_old_id_is_refused_and_reported(db, landing, tmp_path, round_id):
    first = _files([person("A", "TAMBAH", KK1, 1)])
    folder = make_submission(landing, "3273-01", folder_round=round_id, data_files=first)
    publish = tmp_path / "publish"
    validate(round_id, landing_root=landing, publish_root=publish)
    changed = _csv(ANGGOTA_HEADER, [person("A", "TAMBAH", KK1, 1), person("C", "TAMBAH", KK1, 3)])
    (folder / "anggota.csv").write_bytes(changed)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["anggota.csv"] = hashlib.sha256(changed).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))

    summary = validate(round_id, landing_root=landing, publish_root=publish)
    assert len(summary.refused) == 1 and "already processed" in summary.refused[0].detail
    ((_, (ringkasan, _)),) = _refused_folders(publish, round_id).items()
    assert ringkasan["rows"]["anggota.csv"]["received"] == 2
    assert "submission_id lain" in ringkasan["keterangan"]
    staged = db.execute(
        "SELECT count(*) FROM staging.pemda_anggota WHERE submission_pk = %s",
        (summary.submissions[0].submission_pk,),
    ).fetchone()[0]
    assert staged == 1  # the new content was not merged into the old submission


@pytest.mark.skipif(not RewrittenOnReopen.available(), reason="fanotify needs CAP_SYS_ADMIN")
def test_the_bytes_staged_and_kept_are_the_bytes_whose_checksum_was_checked(db, landing, tmp_path, round_id):
    original = _files([person("A", "TAMBAH", KK1, 1)])
    folder = make_submission(landing, "3273-race", folder_round=round_id, data_files=original)
    swapped = _csv(ANGGOTA_HEADER, [person("C", "TAMBAH", KK1, 1), person("B", "TAMBAH", KK1, 3)])
    with RewrittenOnReopen(folder / "anggota.csv", swapped):
        summary = validate(round_id, landing_root=landing, publish_root=tmp_path / "publish")
    pk = summary.submissions[0].submission_pk
    sha, raw_path = db.execute(
        "SELECT sha256, raw_path FROM ingest.submission_file WHERE submission_pk = %s AND file_name = 'anggota.csv'",
        (pk,),
    ).fetchone()
    assert sha == hashlib.sha256(original["anggota.csv"]).hexdigest()
    assert file_sha256(raw_path)[0] == sha  # the raw store holds the bytes under their own hash
    staged = [
        r[0] for r in db.execute("SELECT nik FROM staging.pemda_anggota WHERE submission_pk = %s", (pk,))
    ]
    assert staged == [person("A", "TAMBAH", KK1, 1).split(",")[1]]


def test_free_text_longer_than_its_limit_is_rejected_row_by_row(db, landing, tmp_path, round_id, monkeypatch):
    long_address = KEL.replace("Jl. Satu", "Jl. " + "A" * (10 * 1024 * 1024))
    landing = build_round(tmp_path, round_id, [person("A", "TAMBAH", KK1, 1)], [long_address])
    summary = validate(round_id, landing_root=landing, publish_root=tmp_path / "publish", threshold=1.0)
    pk = summary.submissions[0].submission_pk
    codes = db.execute(
        "SELECT file_name, reason_code, field FROM quality.rejection WHERE submission_pk = %s AND field = 'alamat'",
        (pk,),
    ).fetchall()
    assert codes == [("keluarga.csv", "CODE_OUT_OF_DOMAIN", "alamat")]


def test_a_submission_over_the_size_limit_is_refused_unread(db, landing, tmp_path, round_id, monkeypatch):
    monkeypatch.setenv("DTSEN_MAX_SUBMISSION_BYTES", "200")
    rows = [person("A", "TAMBAH", KK1, 1), person("C", "TAMBAH", KK1, 3)]
    make_submission(landing, "3273-big", folder_round=round_id, data_files=_files(rows))
    publish = tmp_path / "publish"
    summary = validate(round_id, landing_root=landing, publish_root=publish)
    assert (summary.submissions[0].status, summary.submissions[0].reason_code) == (
        "REJECTED",
        "FILE_UNREADABLE",
    )
    ringkasan, ditolak = _feedback(publish, round_id, "3273-big")
    assert "batas 200" in ringkasan["keterangan"]
    assert ringkasan["rows"]["anggota.csv"] == {"received": 2, "merged": 0, "rejected": 2}
    assert {r["reason"] for r in ditolak} == {"FILE_UNREADABLE"}
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").rglob("*.csv"))  # never copied


def test_ditolak_lists_at_most_the_cap_per_reason_but_ringkasan_counts_every_row(
    db, landing, tmp_path, round_id, monkeypatch
):
    monkeypatch.setenv("DTSEN_FEEDBACK_MAX_ROWS_PER_REASON", "2")
    bad = [
        member("TAMBAH", f"32730141019000{i:02d}", KK1, 2, "1990-01-01", 3).replace(",1,3,2,", ",9,3,2,")
        for i in range(11, 16)
    ]
    landing = build_round(tmp_path, round_id, [person("A", "TAMBAH", KK1, 1), *bad], [KEL])
    publish = tmp_path / "publish"
    validate(round_id, landing_root=landing, publish_root=publish, threshold=0.2)  # gate: all refused
    ringkasan, ditolak = _feedback(publish, round_id, "3273-test")
    assert ringkasan["status"] == "REJECTED" and ringkasan["reasons"]["CODE_OUT_OF_DOMAIN"] == 5
    listed = [r for r in ditolak if r["reason"].startswith("CODE_OUT_OF_DOMAIN")]
    assert len(listed) == 2
    assert any("2 dari 5" in w and "CODE_OUT_OF_DOMAIN" in w for w in ringkasan["warnings"])
    assert ringkasan["rows"]["anggota.csv"] == {"received": 6, "merged": 0, "rejected": 6}


def test_the_latin1_byte_of_line_3_reaches_the_region_as_line_3(db, landing, tmp_path, round_id):
    anggota = _csv(ANGGOTA_HEADER, [person("A", "TAMBAH", KK1, 1), person("C", "TAMBAH", KK1, 3)])
    anggota = (
        anggota[: anggota.rindex(b"Nama")]
        + "Jos\u00e9".encode("latin-1")
        + anggota[anggota.rindex(b"Nama") + 10 :]
    )
    make_submission(
        landing,
        "3273-latin",
        folder_round=round_id,
        data_files={"keluarga.csv": _csv(KELUARGA_HEADER, [KEL]), "anggota.csv": anggota},
    )
    publish = tmp_path / "publish"
    validate(round_id, landing_root=landing, publish_root=publish)
    _, ditolak = _feedback(publish, round_id, "3273-latin")
    line = next(r for r in ditolak if r["file"] == "anggota.csv")
    assert line["reason"] == "FILE_UNREADABLE" and "Baris 3" in line["message"]
    assert io.StringIO(line["message"]).read().count("header") == 0
