"""Bad input never crashes a round and never vanishes: each file's rows end accepted or rejected.

Runs the real stage (discover, stage, validate, feedback) on a hostile landing zone.
"""

from __future__ import annotations

import csv
import io
import json

from tests.factories import (
    ANGGOTA_HEADER,
    FAMILY_VALUES,
    KELUARGA_HEADER,
    KK1,
    build_round,
    make_submission,
    member,
    person,
    validate,
)


def _records(data: bytes) -> int:
    """An independent count of CSV records, to check that staging neither drops nor invents rows."""
    csv.field_size_limit(1 << 30)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return -1
    return max(sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1, 0)


def _csv(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def test_hostile_round_loses_no_row_and_reports_every_file(db, tmp_path, monkeypatch, round_id):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    good_keluarga = [f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"]
    evil_name = member("TAMBAH", "3273010303800006", KK1, 1, "1980-03-03", 3).replace(
        "Nama Orang", "\"=cmd|' /C calc'!A0\""
    )
    sqlish = person("H", "TAMBAH", KK1, 3).replace("Nama Orang", "Robert'); DROP TABLE registry.person;--")
    huge = person("J", "TAMBAH", KK1, 3).replace("Nama Orang", "A" * (10 * 1024 * 1024))
    landing = build_round(
        tmp_path,
        round_id,
        [person("A", "TAMBAH", KK1, 1), person("C", "TAMBAH", KK1, 3), evil_name, sqlish, huge],
        good_keluarga,
    )
    files = {
        "3273-latin1": {
            "keluarga.csv": _csv(KELUARGA_HEADER, good_keluarga),
            "anggota.csv": _csv(ANGGOTA_HEADER, [person("A", "TAMBAH", KK1, 1)]).replace(
                b"Nama Orang", "Jos\u00e9".encode("latin-1")
            ),
        },
        "3273-empty": {"keluarga.csv": b"", "anggota.csv": _csv(ANGGOTA_HEADER, [])},
        "3273-headeronly": {
            "keluarga.csv": _csv(KELUARGA_HEADER, []),
            "anggota.csv": _csv(ANGGOTA_HEADER, []),
        },
        "3273-nocolumn": {
            "keluarga.csv": b"operasi,kode_wilayah\nUBAH,3273011001\n",
            "anggota.csv": _csv(ANGGOTA_HEADER, []),
        },
    }
    for sub_id, data in files.items():
        make_submission(landing, sub_id, folder_round=round_id, data_files=data)
    liar = make_submission(landing, "3273-liar", folder_round=round_id)
    (liar / "anggota.csv").write_bytes(b"operasi,nik,no_kk\nHAPUS,3273014101900001,3273010101200001\n")
    make_submission(landing, "3273-dotdot", folder_round=round_id, submission_id="../../etc")
    make_submission(
        landing,
        "3273-zcopy",
        folder_round=round_id,
        data_files={"keluarga.csv": _csv(KELUARGA_HEADER, []), "anggota.csv": _csv(ANGGOTA_HEADER, [])},
    )

    summary = validate(round_id, landing_root=landing, publish_root=tmp_path / "publish", threshold=1.0)
    by_id = {s.submission_id: s for s in summary.submissions}
    assert (by_id["3273-latin1"].status, by_id["3273-latin1"].reason_code) == ("REJECTED", "FILE_UNREADABLE")
    assert by_id["3273-empty"].reason_code == "FILE_MISSING_COLUMN"
    assert by_id["3273-nocolumn"].reason_code == "FILE_MISSING_COLUMN"
    assert by_id["3273-headeronly"].status == "VALIDATED"
    assert by_id["3273-liar"].reason_code == "CHECKSUM_MISMATCH"
    assert by_id["3273-dotdot"].reason_code == "MANIFEST_INVALID"
    assert by_id["3273-zcopy"].reason_code == "DUPLICATE_SUBMISSION"  # same bytes as 3273-headeronly
    assert by_id["3273-test"].status == "VALIDATED"  # two submissions for one regency are both processed

    # Conservation: per file, records in the file == rows received (also for files refused whole),
    # and every received row ends merged or rejected in the feedback of a refused submission
    for sub in summary.submissions:
        for name, received in sub.received.items():
            data = (landing / round_id / "pemda" / sub.submission_id / name).read_bytes()
            expected = _records(data)
            if expected >= 0:
                assert received == expected, (sub.submission_id, name)
        if sub.status != "REJECTED":
            assert sub.feedback_path is None  # not merged yet: no report may say "merged"
            continue
        ringkasan = json.loads(
            (tmp_path / "publish" / "feedback" / round_id / sub.submission_id / "ringkasan.json").read_text()
        )
        assert ringkasan["rows"].keys() == sub.received.keys(), sub.submission_id
        for name, counts in ringkasan["rows"].items():
            assert counts == {"received": sub.received[name], "merged": 0, "rejected": sub.received[name]}

    # Hostile values were stored verbatim, never executed, and never copied into feedback.
    names = {
        r[0][:40]
        for r in db.execute(
            "SELECT nama FROM staging.pemda_anggota WHERE submission_pk = %s",
            (by_id["3273-test"].submission_pk,),
        )
    }
    assert "=cmd|' /C calc'!A0" in names and "Robert'); DROP TABLE registry.person;--" in names
    assert db.execute("SELECT to_regclass('registry.person')").fetchone()[0] is not None
    huge_len = db.execute(
        "SELECT max(char_length(nama)) FROM staging.pemda_anggota WHERE submission_pk = %s",
        (by_id["3273-test"].submission_pk,),
    ).fetchone()[0]
    assert huge_len == 10 * 1024 * 1024
    rejected = dict(
        db.execute(
            "SELECT reason_code || '/' || field, count(*) FROM quality.rejection WHERE submission_pk = %s "
            "AND reason_code = 'CODE_OUT_OF_DOMAIN' GROUP BY 1",
            (by_id["3273-test"].submission_pk,),
        ).fetchall()
    )
    # the 10 MB name is over the 100-character limit: rejected, but the round went on
    assert rejected == {"CODE_OUT_OF_DOMAIN/nama": 1}
    # the rejected-whole latin-1 submission still reports its readable sibling file's rows
    latin = json.loads(
        (tmp_path / "publish" / "feedback" / round_id / "3273-latin1" / "ringkasan.json").read_text()
    )
    assert latin["status"] == "REJECTED" and latin["rows"]["keluarga.csv"]["rejected"] == 1
    assert latin["rows"]["anggota.csv"] == {"received": 1, "merged": 0, "rejected": 1}
    assert latin["reasons"] == {"FILE_UNREADABLE": 2}
    assert "Baris 2" in latin["keterangan"]  # the latin-1 byte is on line 2, not "in the header"
