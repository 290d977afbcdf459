"""Rounds run in order, and no order of starting them (one after another, or at once) leaves a round
that can never be run."""

from __future__ import annotations

import threading

import pytest

from dtsen.ingest.register import RoundOrderError
from tests.factories import run_steps


def _open(round_id: str, landing, tmp_path) -> dict:
    return run_steps(round_id, landing_root=landing, raw_root=tmp_path / "raw", until="open_round")[
        "open_round"
    ]


def _landing(tmp_path, *rounds: str):
    root = tmp_path / "landing"
    for round_id in rounds:
        (root / round_id / "pemda").mkdir(parents=True)
    return root


def test_a_later_round_is_refused_while_an_earlier_landed_round_is_unfinished(fresh_db, tmp_path):
    landing = _landing(tmp_path, "2026-Q4", "2027-Q1")
    with pytest.raises(RoundOrderError, match="2026-Q4 has a landing folder"):
        _open("2027-Q1", landing, tmp_path)
    assert fresh_db.execute("SELECT count(*) FROM ingest.round").fetchone() == (0,)
    # the earlier round is not orphaned: it still starts
    _open("2026-Q4", landing, tmp_path)
    with pytest.raises(RoundOrderError, match="2026-Q4"):  # registered is not finished
        _open("2027-Q1", landing, tmp_path)
    fresh_db.execute("UPDATE ingest.round SET status = 'MERGED' WHERE round_id = '2026-Q4'")
    fresh_db.commit()
    assert _open("2027-Q1", landing, tmp_path)["round_seq"]


def test_two_rounds_started_at_once_leave_the_earlier_one_runnable(fresh_db, tmp_path):
    landing = _landing(tmp_path, "2026-Q4", "2027-Q1")
    start = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def start_round(round_id: str) -> None:
        start.wait()
        try:
            _open(round_id, landing, tmp_path)
            outcome[round_id] = "started"
        except RoundOrderError as exc:
            outcome[round_id] = str(exc)

    threads = [threading.Thread(target=start_round, args=(r,)) for r in ("2027-Q1", "2026-Q4")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcome["2026-Q4"] == "started"
    assert "2026-Q4" in outcome["2027-Q1"]
    registered = [r[0] for r in fresh_db.execute("SELECT round_id FROM ingest.round ORDER BY round_seq")]
    assert registered == ["2026-Q4"]
