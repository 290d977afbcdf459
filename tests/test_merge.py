"""Merging validated rounds into the registry (real PostgreSQL)."""

from __future__ import annotations

from dtsen.ingest.round import ingest_round
from dtsen.merge import check_invariants, merge_round
from dtsen.validate.round import validate_round
from tests.test_validate_round import (
    FAMILY_VALUES,
    KK1,
    PEOPLE,
    build_round,
    person,
)


def _run(db, tmp_path, round_id, anggota, keluarga, sub="r"):
    landing = build_round(tmp_path / sub, round_id, anggota, keluarga)
    ingested = ingest_round(db, round_id, landing_root=landing)
    validate_round(db, ingested.round_seq, threshold=1.0)
    return ingested, merge_round(db, ingested.round_seq)


def _members(db, kk: str) -> dict[str, int]:
    return {
        str(nik): hub
        for nik, hub in db.execute(
            "SELECT nik, hubungan_keluarga FROM registry.membership WHERE no_kk = %s AND valid_to_round IS NULL",
            (int(kk),),
        )
    }


def test_tambah_round_creates_families_members_and_skips_rejected_rows(fresh_db, tmp_path, monkeypatch):
    db, round_id = fresh_db, "2026-Q1"
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    keluarga = [f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"]
    anggota = [person("A", "TAMBAH", KK1, 1), person("C", "TAMBAH", KK1, 3), person("D", "TAMBAH", KK1, 3)]
    ingested, summary = _run(db, tmp_path, round_id, anggota, keluarga)
    assert _members(db, KK1) == {PEOPLE["A"][0]: 1, PEOPLE["C"][0]: 3}  # D is deceased: rejected
    assert summary.changes["families added"] == 1 and summary.changes["persons added"] == 2
    assert check_invariants(db, None, ingested.snapshot.snapshot_pk) == {}
    again = merge_round(db, ingested.round_seq)
    assert again.already_merged
