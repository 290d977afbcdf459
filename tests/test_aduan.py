"""Households' objections and proposals (issue 26, item 2): the aduan source, from landing to case to
outcome. An accepted objection (sanggah) or proposal (usul) becomes a reason of its family's one
verification case, identical ones counted on one reason; bad rows are rejected with contract codes and
fed back to the channel; every objection's fate is written to the round's outcome file and the channel
is called back, signed; a visit's result closes the case and the next version follows the ground check.

The sample's rounds (with the objections the sample itself carries), with one more aduan submission in
2026-Q2 about families of version 1, and in 2026-Q3 one more Kemensos submission: the visits of those
families."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from dtsen.notify.webhook import verify
from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from dtsen.storage import file_sha256
from tests.factories import run_steps, start_webhook_receiver

ADUAN = "desk-2026Q2-01"  # a region's desk, beside the sample's own channel submission
VISITS = "kemensos-2026Q3-77"
HEADER = "jenis,no_kk,nik,kode_wilayah,program,alasan,keterangan,tanggal_aduan,pelapor_ref"
SECRET = "aduan-channel-secret-for-tests-0123456789"


def _submit(landing, round_id: str, source: str, submission_id: str, name: str, lines: list[str]) -> None:
    folder = landing / round_id / source / submission_id
    folder.mkdir(parents=True)
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = {
        "source": source,
        "submission_id": submission_id,
        "round_id": round_id,
        "kode_wilayah": "",
        "submitted_at": f"{round_id[:4]}-06-20T09:00:00+07:00",
        "submitted_by": f"{source}.channel",
        "files": {name: file_sha256(folder / name)[0]},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _families(conn) -> dict:
    """Families of version 1 for each row: pbi_jk recipients not touched by 2026-Q2's or 2026-Q3's own
    files, a member of another, a village, and a KK number nobody has."""
    in_later = set()
    for path in SAMPLE_DIR.glob("landing/2026-Q[23]/*/*/*.csv"):
        in_later |= {r.get("no_kk") for r in csv.DictReader(path.open(encoding="utf-8"))}
    recipients = [
        str(k)
        for (k,) in conn.execute(
            "SELECT DISTINCT no_kk FROM publish.recipient WHERE version = 1 AND program = 'pbi_jk' ORDER BY no_kk"
        )
        if str(k) not in in_later
    ]
    member_nik, member_kk = next(
        (str(n), str(k))
        for n, k in conn.execute(
            "SELECT m.nik, m.no_kk FROM registry.membership m WHERE m.valid_to_round IS NULL ORDER BY m.nik DESC"
        )
        if str(k) not in in_later and str(k) not in recipients[:3]
    )
    village, some_kk = conn.execute(
        "SELECT kode_wilayah, no_kk::text FROM registry.family WHERE is_open ORDER BY no_kk LIMIT 1"
    ).fetchone()
    unregistered = some_kk[:12] + "9999"
    assert not conn.execute("SELECT 1 FROM registry.family WHERE no_kk = %s", (int(unregistered),)).fetchone()
    conn.rollback()
    return {
        "mampu": recipients[0],
        "gone": recipients[1],
        "third": recipients[2],
        "member_nik": member_nik,
        "member_kk": member_kk,
        "village": village,
        "unregistered": unregistered,
    }


@pytest.fixture(scope="module")
def aduan(module_warehouse, tmp_path_factory):
    conn = module_warehouse
    work = tmp_path_factory.mktemp("aduan")
    landing, publish = work / "landing", work / "publish"
    shutil.copytree(SAMPLE_DIR / "landing", landing)
    subscribers = json.loads((PROJECT_ROOT / "config" / "subscribers.json").read_text())
    server, url, calls = start_webhook_receiver()
    subscribers["aduan"] = {"webhooks": [{"url": url, "secret_env": "DTSEN_TEST_ADUAN_SECRET"}]}
    (work / "subscribers.json").write_text(json.dumps(subscribers), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_SUBSCRIBERS", str(work / "subscribers.json"))
        env.setenv("DTSEN_TEST_ADUAN_SECRET", SECRET)
        env.setenv("DTSEN_CALLBACK_ALLOWLIST", "127.0.0.1")
        env.setenv("DTSEN_OUTBOX", str(work / "outbox"))
        run_steps("2026-Q1", landing_root=landing, publish_root=publish)
        f = _families(conn)
        m, g, t, u = f["mampu"], f["gone"], f["third"], f["unregistered"]
        _submit(
            landing,
            "2026-Q2",
            "aduan",
            ADUAN,
            "aduan.csv",
            [
                HEADER,
                f"SANGGAH,{m},,,pbi_jk,MAMPU,punya mobil,2026-05-02,CB-0001",  # line 2
                f"SANGGAH,{m},,,pbi_jk,MAMPU,,2026-05-03,CB-0002",  # identical: counted
                f"SANGGAH,{m},,,pbi_jk,MAMPU,,2026-05-04,CB-0003",
                f"SANGGAH,{g},,,pbi_jk,TIDAK_DIKENAL,,2026-05-05,CB-0004",  # line 5
                f"USUL,,{f['member_nik']},,,KONDISI_MEMBURUK,,2026-05-06,CB-0005",  # by a member's NIK
                f"USUL,{u},,{f['village']},,BELUM_TERDAFTAR,,2026-05-07,CB-0006",  # not registered yet
                f"SANGGAH,{t},,,,MAMPU,,2026-05-08,CB-0007",  # line 8: no program
                f"SANGGAH,{u},,,pbi_jk,MAMPU,,2026-05-09,CB-0008",  # not in the registry
                f"SANGGAH,{t},,,pbi_jk,BELUM_TERDAFTAR,,2026-05-10,CB-0009",  # a proposal's reason
                f"SANGGAH,{t},,,bansos_x,MAMPU,,2026-05-11,CB-0010",  # no such program
                f"USUL,{u},,,,BELUM_TERDAFTAR,,2026-05-12,CB-0011",  # not registered, no village
                f"SANGGAH,{t},,,pbi_jk,MAMPU,,2026-05-13,Budi Santoso",  # a name, not a reference
                f"SANGGAH,{t},,,pbi_jk,MAMPU,,2099-01-01,CB-0013",  # line 14: in the future
            ],
        )
        q2 = run_steps("2026-Q2", landing_root=landing, publish_root=publish, quality_gate_threshold=0.9)
        q2_calls = list(calls)
        visits = [
            "no_kk,tanggal_kunjungan,hasil,layak,petugas_id,catatan,id_kasus",
            f"{m},2026-08-10,DITEMUKAN,0,PKH-0001,,",
            f"{g},2026-08-11,TIDAK_DITEMUKAN,0,PKH-0002,,",
        ]
        _submit(landing, "2026-Q3", "kemensos", VISITS, "groundcheck.csv", visits)
        q3 = run_steps("2026-Q3", landing_root=landing, publish_root=publish, quality_gate_threshold=0.9)
    server.shutdown()
    conn.commit()
    return {
        "conn": conn,
        "f": f,
        "q2": q2,
        "q3": q3,
        "publish": publish,
        "q2_calls": q2_calls,
        "calls": calls,
    }


def _case_of(conn, no_kk: str) -> tuple:
    row = conn.execute(
        "SELECT id_kasus, case_type, state, outcome, kode_wilayah FROM cases.verification_case "
        "WHERE no_kk = %s ORDER BY id_kasus DESC LIMIT 1",
        (int(no_kk),),
    ).fetchone()
    conn.rollback()
    return row


def test_every_accepted_objection_and_proposal_joins_exactly_one_case_of_its_family(aduan):
    conn, f = aduan["conn"], aduan["f"]
    linked = conn.execute(
        "SELECT a.line_no, a.no_kk::text, c.no_kk::text, c.case_type FROM cases.aduan a "
        "JOIN ingest.submission s USING (submission_pk) JOIN cases.verification_case c USING (id_kasus) "
        "WHERE s.submission_id = %s ORDER BY a.line_no",
        (ADUAN,),
    ).fetchall()
    conn.rollback()
    assert [(line, kk) for line, kk, _, _ in linked] == [
        (2, f["mampu"]),
        (3, f["mampu"]),
        (4, f["mampu"]),
        (5, f["gone"]),
        (6, f["member_kk"]),  # a member's NIK names the family the registry holds it in
        (7, f["unregistered"]),
    ]
    assert all(own == case_kk for _, own, case_kk, _ in linked)
    assert [kind for *_, kind in linked] == ["SANGGAH"] * 4 + ["USUL"] * 2
    assert len({kk for _, kk, _, _ in linked}) == 4  # the three identical objections: one case


def test_identical_objections_are_counted_on_one_reason_not_repeated(aduan):
    conn, f = aduan["conn"], aduan["f"]
    reasons = conn.execute(
        "SELECT r.origin, r.detail, r.raised FROM cases.case_reason r JOIN cases.verification_case c USING (id_kasus) "
        "WHERE c.no_kk = %s AND r.origin IN ('sanggah', 'usul')",
        (int(f["mampu"]),),
    ).fetchall()
    conn.rollback()
    assert reasons == [("sanggah", "pbi_jk:MAMPU", 3)]
    rows, with_case = conn.execute(
        "SELECT count(*), count(id_kasus) FROM cases.aduan WHERE round_seq = 2"
    ).fetchone()
    conn.rollback()
    summary = aduan["q2"]["cases"]["aduan"]
    assert (summary["rows"], summary["with_case"]) == (rows, with_case) and rows >= 6


def test_a_proposal_for_a_family_not_registered_opens_a_case_in_the_village_it_gives(aduan):
    _, kind, state, _, village = _case_of(aduan["conn"], aduan["f"]["unregistered"])
    assert (kind, village) == ("USUL", aduan["f"]["village"]) and state in ("OPEN", "EXPIRED")


def test_bad_objections_are_rejected_with_contract_codes_and_fed_back_to_the_channel(aduan):
    folder = aduan["publish"] / "feedback" / "2026-Q2" / ADUAN
    listed = list(csv.DictReader((folder / "ditolak.csv").open(encoding="utf-8")))
    assert [(r["line"], r["reason"], r["field"]) for r in listed] == [
        ("8", "REQUIRED_MISSING", "program"),
        ("9", "RECORD_NOT_FOUND", "no_kk"),
        ("10", "CODE_OUT_OF_DOMAIN", "alasan"),
        ("11", "CODE_OUT_OF_DOMAIN", "program"),
        ("12", "REQUIRED_MISSING", "kode_wilayah"),
        ("13", "CODE_OUT_OF_DOMAIN", "pelapor_ref"),
        ("14", "DATE_INVALID", "tanggal_aduan"),
    ]
    assert all(r["no_kk"].startswith("*" * 12) for r in listed)
    summary = json.loads((folder / "ringkasan.json").read_text())
    assert summary["status"] == "PARTIAL" and summary["rows"]["aduan.csv"] == {
        "received": 13,
        "merged": 6,
        "rejected": 7,
    }


def test_the_channel_gets_each_objections_case_in_the_outcome_file_and_a_signed_callback(aduan):
    folder = aduan["publish"] / "aduan" / "2026-Q2"
    every = list(csv.DictReader((folder / "hasil_aduan.csv").open(encoding="utf-8")))
    rows = [r for r in every if r["submission_id"] == ADUAN]
    assert [(r["baris"], r["pelapor_ref"], r["status"]) for r in rows] == [
        (str(line), f"CB-000{line - 1}", "DIPROSES") for line in range(2, 8)
    ]
    assert all(r["id_kasus"] and r["no_kk"].startswith("*" * 12) for r in rows)
    assert not any(
        aduan["f"]["mampu"] in line for line in (folder / "hasil_aduan.csv").read_text().splitlines()
    )
    regions = sorted(p.name for p in (folder / "wilayah").glob("*.csv"))
    assert regions == sorted({r["kode_wilayah"][:4] + ".csv" for r in every if r["kode_wilayah"]})
    first, call = aduan["q2_calls"]  # every round is told, 2026-Q1 of nothing
    assert json.loads(first["body"])["rows"] == 0
    assert verify(SECRET.encode(), call["timestamp"], call["body"], call["signature"])
    body = json.loads(call["body"])
    assert body["event"] == "dtsen.aduan.outcomes" and body["round_id"] == "2026-Q2"
    assert body["rows"] == len(every) and body["status"]["DIPROSES"] >= 6
    assert body["files"]["hasil_aduan.csv"] == file_sha256(folder / "hasil_aduan.csv")[0]


def test_a_visit_closes_the_objection_and_the_next_version_follows_the_ground_check(aduan):
    conn, f = aduan["conn"], aduan["f"]
    assert _case_of(conn, f["mampu"])[2:4] == ("RESOLVED", "CORRECTED")
    assert _case_of(conn, f["gone"])[2:4] == ("RESOLVED", "NOT_FOUND")
    recipient = {
        (kk, v): bool(
            conn.execute(
                "SELECT 1 FROM publish.recipient WHERE version = %s AND no_kk = %s AND program = 'pbi_jk'",
                (v, int(f[kk])),
            ).fetchone()
        )
        for kk in ("mampu", "gone")
        for v in (2, 3)
    }
    conn.rollback()
    # an objection removes nobody; the visit that did not find the family does (exclude_groundcheck)
    assert recipient[("gone", 2)] and not recipient[("gone", 3)]
    assert recipient[("mampu", 2)] == recipient[("mampu", 3)]  # found there, its ranking decides
    rows = list(
        csv.DictReader((aduan["publish"] / "aduan" / "2026-Q3" / "hasil_aduan.csv").open(encoding="utf-8"))
    )
    closed = {(r["baris"], r["status"], r["hasil"], r["putaran_aduan"]) for r in rows}
    assert {
        ("2", "SELESAI", "DATA_DIKOREKSI", "2026-Q2"),
        ("5", "SELESAI", "TIDAK_DITEMUKAN", "2026-Q2"),
    } <= closed
    assert len(aduan["calls"]) == 3


def test_the_outcome_step_writes_its_files_once_per_round(aduan):
    again = run_steps(
        "2026-Q2", landing_root=SAMPLE_DIR / "landing", publish_root=aduan["publish"], only=["aduan_outcomes"]
    )["aduan_outcomes"]
    written = aduan["publish"] / "aduan" / "2026-Q2" / "hasil_aduan.csv"
    assert again["done_before"] is True and again["rows"] == len(written.read_text().splitlines()) - 1
