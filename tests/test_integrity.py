"""Registry integrity (issue 15): a surge of split-off families in one village, entered by one account,
is flagged in the region's feedback, Kemensos's ground-check list, the manifest and the approval text;
villages with ordinary births and marriages are not."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from dtsen.storage import file_sha256
from tests.factories import run_steps

SURGE = 10  # split-off families entered into one village by one account
ACCOUNT = "operator.3674.pendataan"
SUBMISSION = "3674-2026Q3-09"


def _csv_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _surge_submission(conn, landing: Path) -> tuple[str, list[str]]:
    """One extra Q3 submission of regency 3674 by its own account: SURGE members leave their families
    (a member each, never the head) to head new one-person families, all in one village."""
    q3 = landing / "2026-Q3"
    mentioned = {r["nik"] for p in q3.glob("pemda/*/anggota.csv") for r in _csv_rows(p)}
    snapshot = max((landing / "reference" / "dukcapil").iterdir())
    deceased = {r["nik"] for r in _csv_rows(snapshot / "penduduk.csv") if r["status_hidup"] == "MENINGGAL"}
    movers = []
    for nik, kode in conn.execute(
        """SELECT DISTINCT ON (m.no_kk) m.nik::text, f.kode_wilayah
           FROM registry.membership m JOIN registry.family f ON f.no_kk = m.no_kk AND f.is_open
           WHERE m.valid_to_round IS NULL AND m.hubungan_keluarga <> 1 AND f.kode_wilayah LIKE '3674%'
             AND (SELECT count(*) FROM registry.membership o WHERE o.no_kk = m.no_kk AND o.valid_to_round IS NULL) >= 3
           ORDER BY m.no_kk, m.nik"""
    ):
        if nik not in mentioned and nik not in deceased:
            movers.append((nik, kode))
    conn.rollback()
    assert len(movers) >= SURGE
    village = movers[0][1]
    template = _csv_rows(q3 / "pemda" / "3674-2026Q3-01" / "keluarga.csv")[0]
    keluarga, anggota = [], []
    for i, (nik, _) in enumerate(movers[:SURGE]):
        no_kk = f"{village[:6]}150826{9001 + i:04d}"
        keluarga.append(
            template
            | {
                "operasi": "TAMBAH",
                "no_kk": no_kk,
                "kode_wilayah": village,
                "alamat": f"Gg. Baru No. {i + 1}",
            }
        )
        anggota.append(
            {
                "operasi": "UBAH",
                "nik": nik,
                "no_kk": no_kk,
                "hubungan_keluarga": "1",
                "status_perkawinan": "1",
            }
        )
    folder = q3 / "pemda" / SUBMISSION
    folder.mkdir()
    _write_csv(folder / "keluarga.csv", keluarga)
    _write_csv(folder / "anggota.csv", anggota)
    manifest = {
        "source": "pemda",
        "submission_id": SUBMISSION,
        "round_id": "2026-Q3",
        "kode_wilayah": "3674",
        "submitted_at": "2026-09-26T10:00:00+07:00",
        "submitted_by": ACCOUNT,
        "files": {name: file_sha256(folder / name)[0] for name in ("anggota.csv", "keluarga.csv")},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return village, [nik for nik, _ in movers[:SURGE]]


@pytest.fixture(scope="module")
def surge(module_warehouse, tmp_path_factory):
    """The sample's rounds, with the surge added to 2026-Q3; Q3's audit made to block on drift, so
    its candidate waits for an approval (then given) and the approval text can be read."""
    from dtsen.publish.approval import pending_approval
    from dtsen.publish.audit import approve_version

    conn = module_warehouse
    work = tmp_path_factory.mktemp("integrity")
    landing, publish = work / "landing", work / "publish"
    shutil.copytree(SAMPLE_DIR / "landing", landing)
    steps = {}
    audit = json.loads((PROJECT_ROOT / "config" / "audit.json").read_text())
    strict = work / "audit.json"
    strict.write_text(json.dumps(audit | {"drift_max_share": 0.0}), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_OUTBOX", str(work / "outbox"))
        for round_id in ("2026-Q1", "2026-Q2"):
            steps[round_id] = run_steps(round_id, landing_root=landing, publish_root=publish)
        village, movers = _surge_submission(conn, landing)
        env.setenv("DTSEN_AUDIT_CONFIG", str(strict))
        steps["2026-Q3"] = run_steps(
            "2026-Q3", landing_root=landing, publish_root=publish, until="rank_and_audit"
        )
        waiting = pending_approval(conn, "2026-Q3")
        assert waiting is not None, steps["2026-Q3"]["rank_and_audit"]
        approval_text = waiting.markdown()
        approve_version(conn, waiting.version, "admin.test", "drift forced by the test")
        conn.commit()
        run_steps("2026-Q3", landing_root=landing, publish_root=publish)
    return {
        "conn": conn,
        "publish": publish,
        "village": village,
        "movers": movers,
        "steps": steps,
        "approval_text": approval_text,
        "version": waiting.version,
    }


def test_a_split_surge_is_flagged_for_its_village_and_its_account(surge):
    conn = surge["conn"]
    flags = conn.execute(
        "SELECT f.scope, f.key, f.metric, f.families FROM quality.integrity_flag f "
        "JOIN ingest.round r USING (round_seq) WHERE r.round_id = '2026-Q3' ORDER BY 1, 2, 3"
    ).fetchall()
    conn.rollback()
    assert ("DESA", surge["village"], "split", SURGE) in flags
    assert ("AKUN", ACCOUNT, "split", SURGE) in flags
    assert {key for scope, key, _, _ in flags if scope == "DESA"} == {surge["village"]}  # nobody else
    counts = surge["steps"]["2026-Q3"]["integrity"]["counts"]
    assert counts["villages_flagged"] == 1 and counts["accounts_flagged"] == 1


def test_villages_with_ordinary_births_and_marriages_are_not_flagged(surge):
    q2 = surge["steps"]["2026-Q2"]["integrity"]
    assert q2["scored"] and q2["counts"]["new_families"] > 0  # ordinary new families, some split off
    assert q2["counts"]["villages_flagged"] == 0 and q2["counts"]["accounts_flagged"] == 0
    q1 = surge["steps"]["2026-Q1"]["integrity"]
    assert not q1["scored"] and "first load" in q1["why_not_scored"]


def test_the_region_is_asked_for_field_verification_in_plain_indonesian(surge):
    folder = surge["publish"] / "feedback" / "2026-Q3"
    for submission in (SUBMISSION, "3674-2026Q3-01"):  # the account's own and the regency's other one
        ringkasan = json.loads((folder / submission / "ringkasan.json").read_text(encoding="utf-8"))
        notes = [n for n in ringkasan["integritas"] if n.get("kode_wilayah") == surge["village"]]
        assert notes and notes[0]["jumlah_keluarga"] == SURGE
        assert "verifikasi lapangan" in notes[0]["pesan"] and "bukan tuduhan" in notes[0]["pesan"]
        assert notes[0]["pesan"] in ringkasan["warnings"]
    own = json.loads((folder / SUBMISSION / "ringkasan.json").read_text(encoding="utf-8"))
    assert any(n.get("akun") == ACCOUNT for n in own["integritas"])
    other = json.loads((folder / "6213-2026Q3-01" / "ringkasan.json").read_text(encoding="utf-8"))
    assert other["integritas"] == []  # another regency hears nothing of it
    text = json.dumps(own)
    assert not any(nik in text for nik in surge["movers"])


def test_kemensos_gets_the_families_behind_the_flags_with_keys_masked(surge):
    rows = _csv_rows(surge["publish"] / "integrity" / "2026-Q3" / "pemisahan_kk.csv")
    assert len(rows) == SURGE
    assert {r["kode_wilayah"] for r in rows} == {surge["village"]}
    assert all(r["no_kk"].startswith("*" * 12) and r["no_kk"][-4:].isdigit() for r in rows)
    assert all(r["pemisahan_kk"] == "1" and r["akun"] == ACCOUNT for r in rows)
    assert {r["dasar"] for r in rows} == {"AKUN:small;AKUN:split;DESA:small;DESA:split"}


def test_the_manifest_and_the_approval_text_show_the_flags_as_warnings(surge):
    manifest = json.loads(
        (surge["publish"] / "versions" / str(surge["version"]) / "manifest.json").read_text(encoding="utf-8")
    )
    splits = manifest["integrity"]["splits"]
    assert splits["scored"] and splits["villages_flagged"] == 1 and splits["families_involved"] == SURGE
    assert {(f["scope"], f["key"]) for f in splits["flags"]} == {
        ("DESA", surge["village"]),
        ("AKUN", ACCOUNT),
    }
    text = surge["approval_text"]
    assert "Integrity warnings" in text and f"village {surge['village']}" in text and ACCOUNT in text
    assert not any(nik in text for nik in surge["movers"])


def test_implausible_recipients_are_counted_per_rule_and_listed_for_the_ground_check(surge):
    conn = surge["conn"]
    version = surge["version"]
    expected = dict(
        conn.execute(
            """SELECT r.rule, count(*) FROM (
                   SELECT 'mobil' AS rule, no_kk FROM publish.keluarga WHERE version = %(v)s AND desil <= 5 AND punya_mobil = 1
                   UNION ALL SELECT 'ac', no_kk FROM publish.keluarga WHERE version = %(v)s AND desil <= 5 AND punya_ac = 1
                   UNION ALL SELECT 'lantai_luas', no_kk FROM publish.keluarga
                             WHERE version = %(v)s AND desil <= 5 AND luas_lantai_m2 >= 150
                   UNION ALL SELECT DISTINCT 'anggota_asn_bumn', k.no_kk FROM publish.keluarga k
                             JOIN publish.anggota a ON a.version = k.version AND a.no_kk = k.no_kk
                             WHERE k.version = %(v)s AND k.desil <= 5 AND a.status_pekerjaan IN (5, 6)) r
               GROUP BY 1""",
            {"v": version},
        ).fetchall()
    )
    conn.rollback()
    assert expected.get("mobil") and expected.get("anggota_asn_bumn")
    manifest = json.loads(
        (surge["publish"] / "versions" / str(version) / "manifest.json").read_text(encoding="utf-8")
    )
    counted = {rule: entry["families"] for rule, entry in manifest["integrity"]["implausible"].items()}
    assert counted == {rule: expected.get(rule, 0) for rule in counted}
    assert set(counted) == {"mobil", "ac", "lantai_luas", "anggota_asn_bumn", "pengeluaran_bps_tinggi"}
    listed = _csv_rows(surge["publish"] / "integrity" / "2026-Q3" / "penerima_janggal.csv")
    per_rule = {}
    for row in listed:
        for rule in row["aturan"].split(";"):
            per_rule[rule] = per_rule.get(rule, 0) + 1
    assert per_rule == {rule: n for rule, n in counted.items() if n}
    assert all(r["no_kk"].startswith("*" * 12) for r in listed)
