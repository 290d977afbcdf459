"""Row-level suites plus cross-row rules on a hand-built round whose expected codes are known."""

from __future__ import annotations

from dtsen.contract import FileKind
from dtsen.validate.run import Batch, run_authored_suite
from tests.factories import (
    FAMILY_VALUES,
    KK1,
    KK2,
    KK_NOWHERE,
    NOT_IN_DUKCAPIL,
    PEOPLE,
    build_round,
    member,
    merge,
    person,
    stage,
)


def codes_by_line(db, submission_pk: int) -> dict[tuple[str, int], set[str]]:
    out: dict[tuple[str, int], set[str]] = {}
    for file_name, line, code in db.execute(
        "SELECT file_name, line_no, reason_code FROM quality.rejection WHERE submission_pk = %s",
        (submission_pk,),
    ):
        out.setdefault((file_name, line), set()).add(code)
    return out


def test_cross_row_rules_reject_exactly_the_broken_rows(db, tmp_path, monkeypatch, round_id):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    keluarga = [
        f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},",  # line 2: fine
        f"TAMBAH,{KK2},3273011001,Jl. Dua,2026-01-10,{FAMILY_VALUES},",  # line 3: two heads
    ]
    nik, sex, born = NOT_IN_DUKCAPIL
    anggota = [
        person("A", "TAMBAH", KK1, 1),  # 2 fine (head of KK1)
        person("C", "TAMBAH", KK1, 3),  # 3 fine
        person("B", "TAMBAH", KK2, 1),  # 4 FAMILY_STRUCTURE
        person("F", "TAMBAH", KK2, 1),  # 5 FAMILY_STRUCTURE
        person("D", "TAMBAH", KK1, 3),  # 6 NIK_DECEASED
        member("TAMBAH", nik, KK1, sex, born, 3),  # 7 NIK_NOT_IN_DUKCAPIL
        person("H", "TAMBAH", KK_NOWHERE, 3),  # 8 FAMILY_UNKNOWN
        person("E", "UBAH", KK1, 3),  # 9 RECORD_NOT_FOUND
        person("J", "TAMBAH", KK1, 3),  # 10 DUPLICATE_IN_FILE
        person("J", "TAMBAH", KK1, 3),  # 11 DUPLICATE_IN_FILE
        member("TAMBAH", "327301410190000", KK1, 2, "1990-01-01", 3),  # 12 NIK_FORMAT only
    ]
    landing = build_round(tmp_path, round_id, anggota, keluarga)
    ingested = stage(round_id, landing)
    sub = ingested.submissions[0]
    got = codes_by_line(db, sub["submission_pk"])
    assert got == {
        ("keluarga.csv", 3): {"FAMILY_STRUCTURE"},
        ("anggota.csv", 4): {"FAMILY_STRUCTURE"},
        ("anggota.csv", 5): {"FAMILY_STRUCTURE"},
        ("anggota.csv", 6): {"NIK_DECEASED"},
        ("anggota.csv", 7): {"NIK_NOT_IN_DUKCAPIL"},
        ("anggota.csv", 8): {"FAMILY_UNKNOWN"},
        ("anggota.csv", 9): {"RECORD_NOT_FOUND"},
        ("anggota.csv", 10): {"DUPLICATE_IN_FILE"},
        ("anggota.csv", 11): {"DUPLICATE_IN_FILE"},
        ("anggota.csv", 12): {"NIK_FORMAT"},
    }
    status = db.execute(
        "SELECT status FROM ingest.submission WHERE submission_pk = %s", (sub["submission_pk"],)
    ).fetchone()
    assert status == ("VALIDATED",)  # the quality gate passed it
    # validating again changes nothing
    again = stage(round_id, landing)
    assert not again.submissions[0]["processed_now"] and codes_by_line(db, sub["submission_pk"]) == got


def test_quality_gate_rejects_a_mostly_broken_submission_whole(db, tmp_path, monkeypatch, round_id):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    keluarga = [f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"]
    anggota = [person("A", "TAMBAH", KK1, 1), person("D", "TAMBAH", KK1, 3), person("E", "UBAH", KK1, 3)]
    landing = build_round(tmp_path, round_id, anggota, keluarga)
    ingested = stage(round_id, landing, threshold=0.2)
    sub = ingested.submissions[0]
    got = codes_by_line(db, sub["submission_pk"])
    assert got[("anggota.csv", 2)] == {"SUBMISSION_QUALITY_GATE"}
    assert got[("keluarga.csv", 2)] == {"SUBMISSION_QUALITY_GATE"}
    assert got[("anggota.csv", 3)] == {"NIK_DECEASED"}
    row = db.execute(
        "SELECT status, reason_code FROM ingest.submission WHERE submission_pk = %s", (sub["submission_pk"],)
    )
    assert row.fetchone() == ("REJECTED", "SUBMISSION_QUALITY_GATE")


def test_suite_counts_agree_with_row_rejections(db, tmp_path, monkeypatch, round_id):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    keluarga = [
        f"TAMBAH,{KK1},3273011001,,2099-01-01,{FAMILY_VALUES.replace('36', '5000')},",
        f"UBAH,{KK2},3204011001,,2026-02-30,,,,,,,,,,,,,,,,,,",
        "HAPUS,32730101012000,9999999999,,2026-01-01,,,,,,,,,,,,,,,,,,",
    ]
    anggota = [
        member("TAMBAH", "3273014101900001", KK1, 1, "1990-01-02", 1),
        member("TAMBAH", "x", KK1, 3, "", 9),
    ]
    landing = build_round(tmp_path, round_id, anggota, keluarga)
    ingested = stage(round_id, landing)
    sub = ingested.submissions[0]
    for kind, file_name in (
        (FileKind.PEMDA_KELUARGA, "keluarga.csv"),
        (FileKind.PEMDA_ANGGOTA, "anggota.csv"),
    ):
        suite = run_authored_suite(
            db, Batch(kind, round_seq=ingested.round_seq, submission_pk=sub["submission_pk"])
        )
        derived = dict(
            db.execute(
                "SELECT reason_code || '/' || field, count(*) FROM quality.rejection WHERE submission_pk = %s "
                "AND file_name = %s AND reason_code NOT IN ('DUPLICATE_IN_FILE', 'FAMILY_UNKNOWN', 'FAMILY_STRUCTURE', "
                "'NIK_NOT_IN_DUKCAPIL', 'NIK_DECEASED', 'RECORD_NOT_FOUND', 'RECORD_EXISTS') GROUP BY 1",
                (sub["submission_pk"], file_name),
            ).fetchall()
        )
        from_ge = {f"{r.reason_code}/{r.field}": r.failed for r in suite.rules if r.failed}
        assert from_ge == derived and derived


def test_feedback_masks_keys_and_explains_in_indonesian(fresh_db, tmp_path, monkeypatch):
    import csv
    import json

    from dtsen.feedback import write_feedback

    db, round_id = fresh_db, "2026-Q1"
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    keluarga = [f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"]
    evil = member("TAMBAH", "=cmd|' /C calc'!A0", KK1, 1, "1980-03-03", 3)
    anggota = [person("A", "TAMBAH", KK1, 1), person("D", "TAMBAH", KK1, 3), evil]
    landing = build_round(tmp_path, round_id, anggota, keluarga)
    ingested = stage(round_id, landing)
    pk = ingested.submissions[0]["submission_pk"]
    # before the merge nothing is final: no report may say rows were merged
    assert write_feedback(db, pk, tmp_path / "publish") is None
    assert not (tmp_path / "publish" / "feedback" / round_id / "3273-test").exists()
    merge(db, ingested.round_seq)
    report = write_feedback(db, pk, tmp_path / "publish")
    assert report.path == tmp_path / "publish" / "feedback" / round_id / "3273-test"
    with open(report.path / "ditolak.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["file"], r["line"], r["reason"]) for r in rows] == [
        ("anggota.csv", "3", "NIK_DECEASED"),
        ("anggota.csv", "4", "NIK_FORMAT"),
    ]
    assert rows[0]["nik"] == "************0004" and rows[0]["no_kk"] == "************0001"
    assert rows[1]["nik"].startswith("*")  # the formula never reaches a cell start
    assert "meninggal" in rows[0]["message"].lower()
    text = (report.path / "ditolak.csv").read_text()
    assert PEOPLE["D"][0] not in text and "calc" not in text
    ringkasan = json.loads((report.path / "ringkasan.json").read_text())
    assert ringkasan["status"] == "PARTIAL"
    assert ringkasan["rows"]["anggota.csv"] == {"received": 3, "merged": 1, "rejected": 2}
    assert ringkasan["rows"]["keluarga.csv"] == {"received": 1, "merged": 1, "rejected": 0}
    assert ringkasan["reasons"] == {"NIK_DECEASED": 1, "NIK_FORMAT": 1}


def test_dukcapil_snapshot_quality_is_recorded_for_operators(db, tmp_path, monkeypatch, round_id):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    landing = build_round(tmp_path, round_id, [person("A", "TAMBAH", KK1, 1)], [])
    ingested = stage(round_id, landing)
    success, failed = db.execute(
        "SELECT success, failed FROM quality.snapshot_suite_result WHERE snapshot_pk = %s",
        (ingested.opened["dukcapil_snapshot_pk"],),
    ).fetchone()
    assert success and failed == 0
