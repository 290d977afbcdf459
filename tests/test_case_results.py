"""Field results close verification cases (issue 26, item 4), and `dtsen cases` works them: a Kemensos
ground check naming an open case (id_kasus, an extension of groundcheck.csv) or answering a family
with an open case resolves it with the outcome its hasil implies, VISITED then RESOLVED, and the
family's aid follows the ground-check path; a result naming an unknown case, another family's or a
closed one is rejected with CASE_UNKNOWN and fed back to Kemensos.

The sample's rounds with implausible cases due in 200 days (so 2026-Q2's stay open through 2026-Q3),
and one more Kemensos submission in 2026-Q3 made of results for them."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from dtsen.storage import file_sha256
from tests.factories import run_steps

SUBMISSION = "kemensos-2026Q3-09"
HEADER = "no_kk,tanggal_kunjungan,hasil,layak,petugas_id,catatan,id_kasus"


def _write_submission(landing, rows: list[str]) -> None:
    folder = landing / "2026-Q3" / "kemensos" / SUBMISSION
    folder.mkdir(parents=True)
    (folder / "groundcheck.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    manifest = {
        "source": "kemensos",
        "submission_id": SUBMISSION,
        "round_id": "2026-Q3",
        "kode_wilayah": "",
        "submitted_at": "2026-09-29T09:00:00+07:00",
        "submitted_by": "kemensos.groundcheck",
        "files": {"groundcheck.csv": file_sha256(folder / "groundcheck.csv")[0]},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


@pytest.fixture(scope="module")
def results(module_warehouse, tmp_path_factory):
    conn = module_warehouse
    work = tmp_path_factory.mktemp("case-results")
    landing, publish = work / "landing", work / "publish"
    shutil.copytree(SAMPLE_DIR / "landing", landing)
    config = json.loads((PROJECT_ROOT / "config" / "cases.json").read_text())
    config["origins"]["implausible"]["due_days"] = 200
    (work / "cases.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_CASES_CONFIG", str(work / "cases.json"))
        env.setenv("DTSEN_OUTBOX", str(work / "outbox"))
        for round_id in ("2026-Q1", "2026-Q2"):
            run_steps(round_id, landing_root=landing, publish_root=publish)
        in_q3 = {r["no_kk"] for p in landing.glob("2026-Q3/*/*/*.csv") for r in csv.DictReader(p.open())}
        live = [
            (id_kasus, str(no_kk))
            for id_kasus, no_kk in conn.execute(
                "SELECT c.id_kasus, c.no_kk FROM cases.verification_case c "
                "WHERE c.state = 'OPEN' AND EXISTS (SELECT 1 FROM publish.recipient r "
                "WHERE r.version = 2 AND r.no_kk = c.no_kk) ORDER BY c.id_kasus"
            )
            if str(no_kk) not in in_q3
        ]
        (other,) = conn.execute(
            "SELECT f.no_kk::text FROM registry.family f WHERE f.is_open AND NOT EXISTS "
            "(SELECT 1 FROM cases.verification_case c WHERE c.no_kk = f.no_kk) ORDER BY f.no_kk LIMIT 1"
        ).fetchone()
        conn.rollback()
        assert len(live) >= 4, live
        (a_id, a), (b_id, b), (d_id, d), (_, f) = live[:4]
        _write_submission(
            landing,
            [
                f"{a},2026-08-15,DITEMUKAN,0,PKH-3674-001,,{a_id}",  # its case: CORRECTED
                f"{b},2026-08-16,PINDAH,0,PKH-3674-002,,",  # no id: the family's live case, MOVED
                f"{d},2026-08-17,DITEMUKAN,1,PKH-3674-003,,999999999",  # no such case
                f"{other},2026-08-18,DITEMUKAN,1,PKH-3674-004,,{a_id}",  # another family's case
                f"{f},2026-08-19,DITEMUKAN,1,PKH-3674-005,,kasus-7",  # not a case number
            ],
        )
        q3 = run_steps("2026-Q3", landing_root=landing, publish_root=publish, quality_gate_threshold=0.9)
    conn.commit()
    return {
        "conn": conn,
        "steps": q3,
        "publish": publish,
        "ids": {"a": a_id, "b": b_id, "d": d_id},
        "keys": {"a": a, "b": b, "d": d, "other": other, "f": f},
    }


def test_a_result_resolves_its_case_visited_then_resolved_with_the_outcome_its_hasil_implies(results):
    conn, ids = results["conn"], results["ids"]
    cases = {
        i: conn.execute(
            "SELECT state, outcome, closed_round FROM cases.verification_case WHERE id_kasus = %s", (i,)
        ).fetchone()
        for i in ids.values()
    }
    assert cases[ids["a"]] == ("RESOLVED", "CORRECTED", 3)
    assert cases[ids["b"]] == ("RESOLVED", "MOVED", 3)
    assert cases[ids["d"]] == ("OPEN", None, None)  # its row named no case of it: rejected
    moves = conn.execute(
        "SELECT from_state, to_state, round_seq, decided_by, why FROM cases.case_transition "
        "WHERE id_kasus = %s ORDER BY transition_pk",
        (ids["a"],),
    ).fetchall()
    conn.rollback()
    assert [m[:4] for m in moves] == [
        (None, "OPEN", 2, "system"),
        ("OPEN", "VISITED", 3, "system"),
        ("VISITED", "RESOLVED", 3, "system"),
    ]
    assert moves[1][4] == "field result of 2026-08-15: hasil DITEMUKAN, layak 0"
    assert moves[2][4] == "outcome CORRECTED"
    # the sample's own Kemensos results of families with a case resolve them too
    closed = dict(
        conn.execute(
            "SELECT outcome, count(*) FROM cases.verification_case WHERE closed_round = 3 AND state = 'RESOLVED' "
            "GROUP BY outcome"
        ).fetchall()
    )
    conn.rollback()
    assert results["steps"]["cases"]["resolved"] == closed and closed["MOVED"] == 1


def test_a_result_for_an_unknown_foreign_or_malformed_case_is_rejected_and_fed_back(results):
    conn, keys = results["conn"], results["keys"]
    rejected = conn.execute(
        "SELECT q.line_no, q.reason_code, q.field FROM quality.rejection q JOIN ingest.submission s USING (submission_pk) "
        "WHERE s.submission_id = %s ORDER BY q.line_no",
        (SUBMISSION,),
    ).fetchall()
    conn.rollback()
    assert rejected == [
        (4, "CASE_UNKNOWN", "id_kasus"),
        (5, "CASE_UNKNOWN", "id_kasus"),
        (6, "CODE_OUT_OF_DOMAIN", "id_kasus"),
    ]
    folder = results["publish"] / "feedback" / "2026-Q3" / SUBMISSION
    listed = list(csv.DictReader((folder / "ditolak.csv").open(encoding="utf-8")))
    assert [(r["line"], r["reason"]) for r in listed] == [
        ("4", "CASE_UNKNOWN"),
        ("5", "CASE_UNKNOWN"),
        ("6", "CODE_OUT_OF_DOMAIN"),
    ]
    assert "nomor kasus ini tidak dikenal untuk keluarga ini" in listed[0]["message"]
    assert listed[0]["no_kk"] == "*" * 12 + keys["d"][-4:]
    summary = json.loads((folder / "ringkasan.json").read_text())
    assert summary["status"] == "PARTIAL" and summary["reasons"] == {
        "CASE_UNKNOWN": 2,
        "CODE_OUT_OF_DOMAIN": 1,
    }
    assert not any("id_kasus" in w for w in summary["warnings"])


def test_a_moved_familys_aid_follows_the_ground_check_into_the_next_version(results):
    """The case does not exclude anyone: the ground check does (programs' exclude_groundcheck)."""
    conn, keys = results["conn"], results["keys"]
    programs = {
        v: {
            p
            for (p,) in conn.execute(
                "SELECT program FROM publish.recipient WHERE version = %s AND no_kk = %s", (v, int(keys["b"]))
            )
        }
        for v in (2, 3)
    }
    conn.rollback()
    assert programs[2] and not programs[3]


def test_a_sample_ground_check_without_id_kasus_is_not_warned_about(results):
    folder = results["publish"] / "feedback" / "2026-Q3" / "kemensos-2026Q3-01"
    summary = json.loads((folder / "ringkasan.json").read_text())
    assert not any("id_kasus" in w for w in summary["warnings"])


def _dtsen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dtsen", "cases", *args],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cases_are_listed_shown_assigned_and_expired_from_the_command_line_with_keys_masked(results):
    conn = results["conn"]
    listed = _dtsen("list", "--state", "OPEN", "--origin", "implausible", "--json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert found and all(c["state"] == "OPEN" and "implausible" in c["origins"] for c in found)
    assert all(re.fullmatch(r"\*{12}\d{4}", c["no_kk"]) for c in found)
    case = found[0]
    region = case["kode_wilayah"][:4]
    in_region = json.loads(_dtsen("list", "--region", region, "--json").stdout)
    assert in_region and all(c["kode_wilayah"].startswith(region) for c in in_region)

    assigned = _dtsen(
        "assign",
        str(case["id_kasus"]),
        "--team",
        f"PKH-{region}",
        "--by",
        "ops.a",
        "--reason",
        "round 3 plan",
    )
    assert assigned.returncode == 0 and f"assigned to PKH-{region}" in assigned.stdout, assigned.stderr
    shown = _dtsen("show", str(case["id_kasus"]))
    assert shown.returncode == 0, shown.stderr
    assert (
        "ASSIGNED" in shown.stdout
        and f"OPEN -> ASSIGNED  by ops.a: to PKH-{region}: round 3 plan" in shown.stdout
    )
    full = conn.execute(
        "SELECT no_kk::text FROM cases.verification_case WHERE id_kasus = %s", (case["id_kasus"],)
    ).fetchone()[0]
    conn.rollback()
    assert full not in shown.stdout and case["no_kk"] in shown.stdout

    closed = results["ids"]["a"]
    refused = _dtsen("assign", str(closed), "--team", "PKH-0000", "--by", "ops.a", "--reason", "late")
    assert refused.returncode == 5 and f"case {closed} is RESOLVED" in refused.stderr

    expired = _dtsen("expire", "--as-of", "2030-01-01", "--by", "ops.b")
    assert expired.returncode == 0, expired.stderr
    assert conn.execute(
        "SELECT count(*) FROM cases.verification_case WHERE state IN ('OPEN', 'ASSIGNED')"
    ).fetchone() == (0,)
    assert conn.execute(
        "SELECT from_state, decided_by, round_seq FROM cases.case_transition WHERE id_kasus = %s ORDER BY transition_pk DESC LIMIT 1",
        (case["id_kasus"],),
    ).fetchone() == ("ASSIGNED", "ops.b", None)
    conn.rollback()
