"""The synthetic generator: valid clean data, real injected defects, truth consistent, deterministic."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dtsen.contract import CONTRACT_ROW_LEVEL_CODES
from dtsen.domain import codes
from dtsen.domain.identity import kk_problem, nik_mismatch, nik_problem
from dtsen.paths import SAMPLE_DIR
from dtsen.reference import read_wilayah

SAMPLE_ARGS = ["--persons", "4000", "--rounds", "3", "--seed", "20260101", "--aduan", "0.02"]
ROUNDS = ("2026-Q1", "2026-Q2", "2026-Q3")


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def gz_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def injected_lines(round_id: str) -> dict[tuple[str, str, int], dict]:
    return {
        (r["submission_id"], r["file"], int(r["line"])): r
        for r in rows(SAMPLE_DIR / "truth" / round_id / "cases.csv")
        if r["line"]
    }


def resubmitted(round_id: str) -> set[str]:
    return {
        r["submission_id"]
        for r in rows(SAMPLE_DIR / "truth" / round_id / "cases.csv")
        if r["expected_codes"] == "DUPLICATE_SUBMISSION"
    }


def files_of(round_id: str, source: str, name: str):
    """Each delivered file of a source, leaving out byte-identical resubmissions (rejected whole)."""
    for path in sorted((SAMPLE_DIR / "landing" / round_id / source).glob(f"*/{name}")):
        if path.parent.name not in resubmitted(round_id):
            yield path.parent.name, path


def test_sample_regenerates_byte_identical(tmp_path):
    out = tmp_path / "sample"
    subprocess.run(
        [sys.executable, "-m", "dtsen_dev.generate", *SAMPLE_ARGS, "--out", str(out)],
        check=True,
        capture_output=True,
    )
    committed = {
        p.relative_to(SAMPLE_DIR): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in SAMPLE_DIR.rglob("*")
        if p.is_file()
    }
    fresh = {
        p.relative_to(out): hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*") if p.is_file()
    }
    assert fresh == committed


def test_another_seed_gives_another_world(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out, seed in ((a, "1"), (b, "2")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "dtsen_dev.generate",
                "--persons",
                "400",
                "--rounds",
                "1",
                "--seed",
                seed,
                "--out",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
    assert (a / "summary.json").read_text() != (b / "summary.json").read_text()


@pytest.mark.parametrize("round_id", ROUNDS)
def test_clean_rows_carry_valid_numbers_consistent_with_identity(round_id):
    injected = injected_lines(round_id)
    checked = 0
    for sub_id, path in files_of(round_id, "pemda", "anggota.csv"):
        for line, r in enumerate(rows(path), start=2):
            if (sub_id, "anggota.csv", line) in injected:
                continue
            assert nik_problem(r["nik"]) is None and kk_problem(r["no_kk"]) is None
            if r["tanggal_lahir"]:
                assert (
                    nik_mismatch(r["nik"], dt.date.fromisoformat(r["tanggal_lahir"]), int(r["jenis_kelamin"]))
                    is None
                )
            checked += 1
    assert checked > 0


def test_each_dukcapil_snapshot_lists_every_nik_once():
    snapshots = sorted((SAMPLE_DIR / "landing" / "reference" / "dukcapil").glob("*/penduduk.csv"))
    assert len(snapshots) == len(ROUNDS)
    for snapshot in snapshots:
        people = rows(snapshot)
        niks = Counter(r["nik"] for r in people)
        assert max(niks.values()) == 1
        assert all(nik_problem(n) is None for n in niks)
        assert {r["status_hidup"] for r in people} == {"HIDUP", "MENINGGAL"}


@pytest.mark.parametrize("round_id", ROUNDS)
def test_expected_registry_has_one_head_per_family_and_no_orphans(round_id):
    families = {r["no_kk"] for r in gz_rows(SAMPLE_DIR / "truth" / round_id / "expected_keluarga.csv.gz")}
    persons = gz_rows(SAMPLE_DIR / "truth" / round_id / "expected_anggota.csv.gz")
    heads = Counter(r["no_kk"] for r in persons if r["hubungan_keluarga"] == "1")
    assert {r["no_kk"] for r in persons} == families  # every member's family exists; no empty family
    assert all(heads[kk] == 1 for kk in families)
    assert len({r["nik"] for r in persons}) == len(persons)


def test_every_row_level_reason_is_injected_in_the_sample():
    seen = set()
    for round_id in ROUNDS:
        for r in rows(SAMPLE_DIR / "truth" / round_id / "cases.csv"):
            seen.update(c for c in r["expected_codes"].split(";") if c)
    assert set(CONTRACT_ROW_LEVEL_CODES) - {"SUBMISSION_QUALITY_GATE"} <= seen
    assert "DUPLICATE_SUBMISSION" in seen


def test_round_one_is_the_initial_migration_all_tambah():
    for _, path in files_of("2026-Q1", "pemda", "keluarga.csv"):
        assert {r["operasi"] for r in rows(path)} == {"TAMBAH"}
    for _, path in files_of("2026-Q1", "pemda", "anggota.csv"):
        assert {r["operasi"] for r in rows(path)} == {"TAMBAH"}


def test_later_rounds_carry_every_kind_of_update():
    ops = Counter()
    for _, path in files_of("2026-Q2", "pemda", "anggota.csv"):
        ops.update((r["operasi"], r["alasan_hapus"]) for r in rows(path))
    assert ops[("TAMBAH", "")] and ops[("UBAH", "")] and ops[("HAPUS", "MENINGGAL")]
    cases = Counter(r["case"] for r in rows(SAMPLE_DIR / "truth" / "2026-Q2" / "cases.csv"))
    assert cases["UNREPORTED_DEATH"] and cases["RESUBMITTED_IDENTICAL_FILES"]


def test_manifests_checksum_their_files():
    for manifest_path in (SAMPLE_DIR / "landing").glob("*/*/*/manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        assert manifest["submission_id"] == manifest_path.parent.name
        for name, digest in manifest["files"].items():
            assert hashlib.sha256((manifest_path.parent / name).read_bytes()).hexdigest() == digest


def test_legitimate_odd_cases_are_present():
    persons = gz_rows(SAMPLE_DIR / "truth" / "2026-Q1" / "expected_anggota.csv.gz")
    conventional = [r for r in persons if r["tanggal_lahir"][5:] in ("12-31", "07-01")]
    assert len(conventional) / len(persons) > 0.01
    families = {
        r["no_kk"]: r["kode_wilayah"]
        for r in gz_rows(SAMPLE_DIR / "truth" / "2026-Q1" / "expected_keluarga.csv.gz")
    }
    elsewhere = [r for r in persons if r["nik"][:4] != families[r["no_kk"]][:4]]
    assert len(elsewhere) / len(persons) > 0.02  # NIK registered in another regency than the address


def _field_defect(code: str, r: dict, regency: str, wilayah) -> bool:
    if code == "NIK_FORMAT":
        return nik_problem(r["nik"]) is not None
    if code == "NIK_MISMATCH":
        return (
            nik_problem(r["nik"]) is None
            and nik_mismatch(r["nik"], dt.date.fromisoformat(r["tanggal_lahir"]), int(r["jenis_kelamin"]))
            is not None
        )
    if code == "KK_FORMAT":
        return kk_problem(r["no_kk"]) is not None
    if code == "WILAYAH_UNKNOWN":
        return r["kode_wilayah"] not in wilayah.desa
    if code == "WILAYAH_OUT_OF_SCOPE":
        return r["kode_wilayah"] in wilayah.desa and r["kode_wilayah"][:4] != regency
    if code == "REQUIRED_MISSING":
        return any(v == "" for k, v in r.items() if k in ("nama", "alamat", "tanggal_pendataan"))
    if code == "DATE_INVALID":
        for k in ("tanggal_lahir", "tanggal_pendataan"):
            v = r.get(k) or ""
            try:
                if v and not (dt.date(1900, 1, 1) <= dt.date.fromisoformat(v) <= dt.date(2026, 12, 31)):
                    return True
            except ValueError:
                return True
        return False
    if code == "CODE_OUT_OF_DOMAIN":
        return any(
            v and k in codes.CODED_FIELDS and not codes.CODED_FIELDS[k].allows(int(v))
            for k, v in r.items()
            if v.isdigit()
        )
    return True  # cross-row codes are checked against the pipeline in test_sample_end_to_end


def test_each_injected_row_really_has_the_defect_its_code_names():
    wilayah = read_wilayah()
    for round_id in ROUNDS:
        for (sub_id, file_name, line), case in injected_lines(round_id).items():
            if not case["expected_codes"] or case["source"] != "pemda":
                continue
            path = SAMPLE_DIR / "landing" / round_id / "pemda" / sub_id / file_name
            r = rows(path)[line - 2]
            assert r[case["key_type"]] == case["key"] or case["key_type"] == "submission"
            for code in case["expected_codes"].split(";"):
                assert _field_defect(code, r, sub_id[:4], wilayah), (round_id, sub_id, file_name, line, code)


def test_memory_stays_flat_for_a_larger_world(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dtsen_dev.generate",
            "--persons",
            "60000",
            "--rounds",
            "2",
            "--out",
            str(tmp_path / "w"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(out.stdout)
    assert report["peak_rss_mib"] < 800 and report["row_level_codes_not_injected"] == []
