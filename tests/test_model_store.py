"""Ranking models kept in the warehouse and the one in use (issue 25): the first candidate registers the
configured model file and records it as adopted by the system; a model a person adopts is the one the
next candidate is ranked with, and named with its checksum in that version; a decision needs who and
why; `dtsen explain` explains a version with the model it was ranked with."""

from __future__ import annotations

import copy
import json

import pytest

from dtsen.paths import SAMPLE_DIR
from dtsen.rank.model import load_model, parse_model
from tests.factories import run_steps


@pytest.fixture(scope="module")
def rounds(module_warehouse, tmp_path_factory):
    return module_warehouse, tmp_path_factory.mktemp("publish")


def _shifted(model, by: float) -> dict:
    """The model with its intercept moved: every score moves alike, so no family changes place."""
    document = copy.deepcopy(model.document)
    document["intercept"] = round(document["intercept"] + by, 6)
    document["version"] = "shifted"
    return document


def test_the_first_candidate_registers_the_model_file_as_adopted_by_the_system(rounds):
    from dtsen.model import store

    conn, publish_root = rounds
    run_steps("2026-Q1", landing_root=SAMPLE_DIR / "landing", publish_root=publish_root)
    with conn.transaction():
        (number, model) = store.adopted(conn)
        decisions = conn.execute(
            "SELECT outcome, decided_by, channel FROM publish.ranking_model_decision"
        ).fetchall()
        named = conn.execute(
            "SELECT ranking_model->>'sha256' FROM publish.version WHERE version = 1"
        ).fetchone()[0]
    assert model.sha256 == load_model().sha256 == named
    assert decisions == [("ADOPTED", "system", "system")]
    manifest = json.loads((publish_root / "versions" / "1" / "manifest.json").read_text())
    assert manifest["ranking_model"]["sha256"] == model.sha256


def test_an_adopted_model_ranks_the_next_candidate_and_its_version_names_it(rounds):
    from dtsen.model import adopt, store

    conn, publish_root = rounds
    with conn.transaction():
        number = store.register(conn, _shifted(load_model(), 0.25), "fit", "test")
        with pytest.raises(Exception, match="--by"):
            adopt.adopt_from_cli(conn, number, "ops", "  ")
    with conn.transaction():
        adopt.adopt_from_cli(conn, number, "ops", "re-estimated on the 2026 measurements")
    run_steps("2026-Q2", landing_root=SAMPLE_DIR / "landing", publish_root=publish_root)
    with conn.transaction():
        named, skor = conn.execute(
            "SELECT v.ranking_model->>'sha256', (SELECT avg(skor_kesejahteraan) FROM publish.keluarga k "
            "WHERE k.version = 2 AND k.skor_sumber = 'PMT') FROM publish.version v WHERE v.version = 2"
        ).fetchone()
        before = conn.execute(
            "SELECT avg(skor_kesejahteraan) FROM publish.keluarga WHERE version = 1 AND skor_sumber = 'PMT'"
        ).fetchone()[0]
        shifted = store.get(conn, number)
        last = conn.execute(
            "SELECT outcome, decided_by, channel, reason FROM publish.ranking_model_decision "
            "ORDER BY decision_pk DESC LIMIT 1"
        ).fetchone()
    assert named == shifted.sha256 != load_model().sha256
    assert float(skor) == pytest.approx(float(before) + 0.25, abs=0.05)
    assert last == ("ADOPTED", "ops", "cli", "re-estimated on the 2026 measurements")


def test_a_registered_model_is_kept_as_it_was_and_found_by_its_checksum(rounds):
    from dtsen.model import store

    conn, _ = rounds
    with conn.transaction():
        document = _shifted(load_model(), 0.5)
        first = store.register(conn, document, "fit", "test")
        again = store.register(conn, copy.deepcopy(document), "fit", "someone else")
        assert first == again
        assert store.get(conn, first).sha256 == parse_model(document).sha256
        assert store.model_of_version(conn, 1).sha256 == load_model().sha256
        with pytest.raises(Exception, match="no ranking model"):
            store.get(conn, 999)


def test_dtsen_model_adopt_list_and_show_from_the_command_line(rounds, tmp_path):
    import os
    import subprocess
    import sys

    conn, _ = rounds
    shipped = tmp_path / "pmt-shipped.json"
    shipped.write_text(json.dumps(_shifted(load_model(), -0.1) | {"version": "shipped"}))

    def dtsen(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dtsen", "model", *args],
            env=os.environ,
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = dtsen("adopt", "--file", str(shipped), "--by", "ops", "--reason", " ")
    assert refused.returncode == 5 and "--reason" in refused.stderr
    adopted = dtsen("adopt", "--file", str(shipped), "--by", "ops", "--reason", "the shipped model")
    assert adopted.returncode == 0, adopted.stderr
    listed = dtsen("list").stdout.splitlines()
    in_use = [line for line in listed if line.endswith("IN USE")]
    assert len(in_use) == 1 and "vshipped" in in_use[0] and " file " in in_use[0]
    shown = dtsen("show")
    assert shown.returncode == 0 and "vshipped" in shown.stdout and "no card" in shown.stdout
    assert dtsen("show", "--version", "999").returncode == 5
    with conn.transaction():
        assert conn.execute(
            "SELECT decided_by, channel, reason FROM publish.ranking_model_decision ORDER BY decision_pk DESC LIMIT 1"
        ).fetchone() == ("ops", "cli", "the shipped model")
