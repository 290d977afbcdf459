"""Discovery of a round and manifest checks: hostile names are refused, lying manifests caught."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dtsen.ingest.landing import LandingError, list_dukcapil_snapshots, list_round
from dtsen.ingest.manifest import check_manifest, data_files, fileset_sha256
from dtsen.storage import file_sha256
from tests.factories import ANGGOTA, KELUARGA, ROUND, make_submission


def only_submission(root: Path):
    listing = list_round(root, ROUND)
    assert len(listing.submissions) == 1, listing
    return listing.submissions[0]


def test_a_correct_submission_is_found_and_its_checksums_match(tmp_path):
    make_submission(tmp_path)
    check = check_manifest(tmp_path, only_submission(tmp_path), known_regencies={"3273"})
    assert check.code is None, check.detail
    assert check.listed == {
        "keluarga.csv": hashlib.sha256(KELUARGA).hexdigest(),
        "anggota.csv": hashlib.sha256(ANGGOTA).hexdigest(),
    }


def test_hostile_folder_names_are_refused_not_followed(tmp_path):
    make_submission(tmp_path)
    pemda = tmp_path / ROUND / "pemda"
    (pemda / ("x" * 65)).mkdir()
    (pemda / "with space").mkdir()
    (pemda / "new\nline").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    os.symlink(outside, pemda / "escape")
    os.symlink(pemda / "3273-2026Q2-01", pemda / "alias-inside")  # a link that stays inside is fine
    listing = list_round(tmp_path, ROUND)
    assert sorted(s.submission_id for s in listing.submissions) == ["3273-2026Q2-01", "alias-inside"]
    reasons = {r.entry.split("/")[-1][:10]: r.why for r in listing.refused}
    assert len(listing.refused) == 4
    assert "leaves the landing zone" in reasons["escape"]
    assert any("\\n" in r.entry for r in listing.refused)  # printed escaped, not raw
    assert all(len(r.entry) < 120 for r in listing.refused)


@pytest.mark.parametrize("round_id", ["../etc", "2026-Q5", "2026Q1", ""])
def test_round_ids_outside_the_pattern_are_refused(tmp_path, round_id):
    with pytest.raises(LandingError):
        list_round(tmp_path, round_id)


def test_a_data_file_linked_out_of_the_landing_zone_is_not_read(tmp_path):
    folder = make_submission(tmp_path)
    secret = tmp_path.parent / f"{tmp_path.name}-secret.csv"
    secret.write_bytes(KELUARGA)
    (folder / "keluarga.csv").unlink()
    os.symlink(secret, folder / "keluarga.csv")
    check = check_manifest(tmp_path, only_submission(tmp_path))
    assert check.code == "MANIFEST_INVALID" and "no such regular file" in check.detail


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"round_id": "2026-Q1"}, "round_id differs"),
        ({"submission_id": "../../etc"}, "submission_id differs"),
        ({"source": "bps"}, "source is not"),
        ({"submitted_at": "2026-05-14 09:30"}, "UTC offset"),
        ({"kode_wilayah": "32"}, "4-digit regency"),
        ({"kode_wilayah": "3299"}, "not a regency"),
        ({"files": {"keluarga.csv": "abc"}}, "not a sha256"),
        ({"files": {"passwd": "0" * 64}}, "does not deliver"),
    ],
)
def test_inconsistent_manifest_is_manifest_invalid(tmp_path, overrides, needle):
    make_submission(tmp_path, **overrides)
    check = check_manifest(tmp_path, only_submission(tmp_path), known_regencies={"3273"})
    assert check.code == "MANIFEST_INVALID"
    assert needle in check.detail


def test_missing_or_unparsable_manifest_is_manifest_invalid(tmp_path):
    folder = make_submission(tmp_path)
    (folder / "manifest.json").write_text("{not json")
    assert check_manifest(tmp_path, only_submission(tmp_path)).code == "MANIFEST_INVALID"
    (folder / "manifest.json").unlink()
    assert "missing" in check_manifest(tmp_path, only_submission(tmp_path)).detail


def test_a_data_file_left_out_of_the_manifest_is_manifest_invalid(tmp_path):
    make_submission(tmp_path, files={"keluarga.csv": hashlib.sha256(KELUARGA).hexdigest()})
    check = check_manifest(tmp_path, only_submission(tmp_path))
    assert check.code == "MANIFEST_INVALID" and "anggota.csv is in the folder" in check.detail


def test_byte_identical_resubmission_has_the_same_fileset_identity(tmp_path):
    make_submission(tmp_path, "3273-2026Q2-01")
    make_submission(tmp_path, "3273-2026Q2-02")
    first, second = (
        fileset_sha256({name: file_sha256(path)[0] for name, path in data_files(tmp_path, sub).items()})
        for sub in list_round(tmp_path, ROUND).submissions
    )
    assert first == second


def test_dukcapil_snapshots_are_found_by_date_folder(tmp_path):
    good = tmp_path / "reference" / "dukcapil" / "2026-03-25"
    good.mkdir(parents=True)
    (good / "penduduk.csv").write_text("nik\n")
    (tmp_path / "reference" / "dukcapil" / "latest").mkdir()
    snapshots, refused = list_dukcapil_snapshots(tmp_path)
    assert [s.snapshot_date.isoformat() for s in snapshots] == ["2026-03-25"]
    assert len(refused) == 1 and "YYYY-MM-DD" in refused[0].why
