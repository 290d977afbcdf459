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

from dtsen.contract import ROW_LEVEL_CODES
from dtsen_dev.evaluate import score_registry, score_rejections
from tests.factories import run_steps

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
    scores = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_OUTBOX", str(root / "outbox"))
        for round_id in ROUNDS:
            steps = run_steps(round_id, landing_root=out / "landing", publish_root=root / "publish")
            conn.commit()
            scores[round_id] = (
                steps,
                score_rejections(conn, out / "truth" / round_id, round_id, set(ROW_LEVEL_CODES)),
                score_registry(conn, out / "truth" / round_id),
            )
            conn.commit()
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
    truth = _rows(out / "truth" / round_id / "aduan.csv")
    assert truth  # the world objected this round
    linked = {
        ref: (str(kk), str(case_kk) if case_kk else None)
        for ref, kk, case_kk in conn.execute(
            "SELECT a.pelapor_ref, a.no_kk, c.no_kk FROM cases.aduan a "
            "JOIN ingest.round r USING (round_seq) LEFT JOIN cases.verification_case c USING (id_kasus) "
            "WHERE r.round_id = %s",
            (round_id,),
        )
    }
    conn.rollback()
    assert set(linked) == {t["pelapor_ref"] for t in truth}
    for t in truth:
        assert linked[t["pelapor_ref"]] == (t["no_kk"], t["no_kk"]), t


def test_the_visits_close_last_rounds_objections_with_the_outcome_the_truth_implies(world):
    conn, out, _ = world
    visits = _rows(out / "truth" / "2026-Q3" / "kunjungan_aduan.csv")
    assert visits
    for visit in visits:
        found = conn.execute(
            "SELECT c.state, c.outcome, r.round_id FROM cases.verification_case c "
            "JOIN ingest.round r ON r.round_seq = c.closed_round WHERE c.no_kk = %s AND c.case_type <> 'VERIFIKASI' "
            "ORDER BY c.id_kasus DESC LIMIT 1",
            (int(visit["no_kk"]),),
        ).fetchone()
        assert found == ("RESOLVED", visit["expected_outcome"], "2026-Q3"), visit
    conn.rollback()


def test_the_round_tells_the_channel_what_became_of_last_rounds_objections(world):
    _, out, scores = world
    steps = scores["2026-Q3"][0]
    closed = steps["aduan_outcomes"]["status"].get("SELESAI", 0)
    visits = _rows(out / "truth" / "2026-Q3" / "kunjungan_aduan.csv")
    objected = {t["no_kk"] for t in _rows(out / "truth" / "2026-Q2" / "aduan.csv")}
    # every report about a visited family is answered SELESAI (several reporters: several rows)
    assert closed >= len([v for v in visits if v["no_kk"] in objected]) > 0
