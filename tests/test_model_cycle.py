"""The model cycle on the sample (issue 25): rounds bring BPS measurements, `dtsen model fit` fits a
model and writes its card (cross-validated errors beside the model in use, what adopting it would
change), a person adopts it, and the next round's version is ranked by it, every family re-scored
through the incremental build."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dtsen.paths import SAMPLE_DIR
from dtsen.rank.model import load_model
from tests.factories import run_steps


@pytest.fixture(scope="module")
def rounds(module_warehouse, tmp_path_factory):
    publish_root = tmp_path_factory.mktemp("publish")
    for round_id in ("2026-Q1", "2026-Q2"):
        run_steps(round_id, landing_root=SAMPLE_DIR / "landing", publish_root=publish_root)
    return module_warehouse, publish_root


def _dtsen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dtsen", "model", *args],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_model_is_fitted_with_its_card_adopted_by_a_person_and_ranks_the_next_round(rounds):
    conn, publish_root = rounds
    fitted = _dtsen("fit", "--by", "ops")
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    assert "cross-validated targeting errors" in fitted.stdout and "not adopted" in fitted.stdout
    with conn.transaction():
        number, card, source, created_by = conn.execute(
            "SELECT m.model_version, c.card, m.source, m.created_by FROM publish.ranking_model m "
            "JOIN publish.ranking_model_card c USING (model_version) ORDER BY m.model_version DESC LIMIT 1"
        ).fetchone()
        in_use = conn.execute("SELECT sha256 FROM publish.adopted_model").fetchone()[0]
    assert (source, created_by) == ("fit", "ops") and in_use == load_model().sha256  # fitted, not adopted
    # the card: the data, both models' errors on the same folds, per province, and the impact
    training = card["training"]
    assert (
        training["families"] > 0 and sum(training["families_per_province"].values()) == training["families"]
    )
    for model in ("candidate", "current"):
        national = card["errors"][model]["national"]
        for cutoff in ("3", "4", "5"):
            assert 0 <= national[cutoff]["inclusion"] <= 1 and 0 <= national[cutoff]["exclusion"] <= 1
        assert set(card["errors"][model]["per_province"]) == set(training["families_per_province"])
    assert card["impact"]["families"] > 0 and set(card["impact"]["programs"]) >= {"pbi_jk", "pkh"}
    assert card["regions"] == ["province", "urban"] and card["cv"]["grouped_by"] == "village"
    assert "nik" not in str(card).lower()  # aggregates only
    # a person adopts it; the next round is ranked by it
    adopted = _dtsen(
        "adopt", "--version", str(number), "--by", "ops", "--reason", "fitted on the 2026 surveys"
    )
    assert adopted.returncode == 0, adopted.stderr
    run_steps(
        "2026-Q3", landing_root=SAMPLE_DIR / "landing", publish_root=publish_root, until="rank_and_audit"
    )
    with conn.transaction():
        named, build = conn.execute(
            "SELECT ranking_model->>'sha256', build FROM publish.version WHERE version = 3"
        ).fetchone()
        model_sha = conn.execute(
            "SELECT sha256 FROM publish.ranking_model WHERE model_version = %s", (number,)
        ).fetchone()[0]
    assert named == model_sha
    assert build["mode"] == "incremental" and build["rescore_all"]
    listed = _dtsen("list").stdout.splitlines()
    assert any(line.startswith(f"model {number:>3}") and line.endswith("IN USE") for line in listed), listed
