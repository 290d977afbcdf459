"""A generated world with households' objections and proposals (`dtsen-dev generate --aduan`) through
the round's step list, against its truth (issue 26): every objection or proposal the truth accepts
joins exactly one case, of the family the truth names, and nothing else is rejected than the rows the
truth injected; the visits Kemensos makes a round later close those cases with the outcome the truth
implies; and the registry still equals the expected registry after every round."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import objections_against_truth, rounds_against_truth, visits_against_truth

ROUNDS = ("2026-Q1", "2026-Q2", "2026-Q3")


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def world(module_warehouse, tmp_path_factory):
    conn = module_warehouse
    root = tmp_path_factory.mktemp("aduan-world")
    out = root / "world"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dtsen_dev.generate",
            "--persons",
            "3000",
            "--aduan",
            "0.03",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_OUTBOX", str(root / "outbox"))
        scores = rounds_against_truth(conn, out, root / "publish", ROUNDS)
    return conn, out, scores


@pytest.mark.parametrize("round_id", ROUNDS)
def test_rejections_and_registry_match_the_truth_with_objections_in_the_world(world, round_id):
    _, _, scores = world
    _, rejection, registry = scores[round_id]
    assert rejection.missed == [] and rejection.unexpected == []
    assert all((s.precision, s.recall) == (1.0, 1.0) for s in rejection.codes.values()), rejection.codes
    assert registry.samples == [] and registry.families_actual == registry.families_expected


@pytest.mark.parametrize("round_id", ROUNDS[1:])
def test_every_objection_the_truth_accepts_joins_one_case_of_the_family_it_names(world, round_id):
    conn, out, _ = world
    assert _rows(out / "truth" / round_id / "aduan.csv")  # the world objected this round
    assert objections_against_truth(conn, out / "truth" / round_id, round_id) == []


def test_the_visits_close_last_rounds_objections_with_the_outcome_the_truth_implies(world):
    conn, out, _ = world
    assert _rows(out / "truth" / "2026-Q3" / "kunjungan_aduan.csv")
    assert visits_against_truth(conn, out / "truth" / "2026-Q3", "2026-Q3") == []


def test_the_round_tells_the_channel_what_became_of_last_rounds_objections(world):
    _, out, scores = world
    steps = scores["2026-Q3"][0]
    closed = steps["aduan_outcomes"]["status"].get("SELESAI", 0)
    visits = _rows(out / "truth" / "2026-Q3" / "kunjungan_aduan.csv")
    objected = {t["no_kk"] for t in _rows(out / "truth" / "2026-Q2" / "aduan.csv")}
    # every report about a visited family is answered SELESAI (several reporters: several rows)
    assert closed >= len([v for v in visits if v["no_kk"] in objected]) > 0
