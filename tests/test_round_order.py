"""Rounds run in order, and no order of starting them (one after another, or at once) leaves a round
that can never be run."""

from __future__ import annotations

import threading

import psycopg
import pytest

from dtsen.ingest.register import RoundOrderError
from dtsen.ingest.round import open_round
from dtsen.warehouse import engine


def _landing(tmp_path, *rounds: str):
    root = tmp_path / "landing"
    for round_id in rounds:
        (root / round_id / "pemda").mkdir(parents=True)
    return root


def test_a_later_round_is_refused_while_an_earlier_landed_round_is_unfinished(fresh_db, tmp_path):
    landing = _landing(tmp_path, "2026-Q4", "2027-Q1")
    with pytest.raises(RoundOrderError, match="2026-Q4 has a landing folder"):
        open_round(fresh_db, "2027-Q1", landing_root=landing, raw_root=tmp_path / "raw")
    assert fresh_db.execute("SELECT count(*) FROM ingest.round").fetchone() == (0,)
    # the earlier round is not orphaned: it still starts
    open_round(fresh_db, "2026-Q4", landing_root=landing, raw_root=tmp_path / "raw")
    with pytest.raises(RoundOrderError, match="2026-Q4"):  # registered is not finished
        open_round(fresh_db, "2027-Q1", landing_root=landing, raw_root=tmp_path / "raw")
    fresh_db.execute("UPDATE ingest.round SET status = 'MERGED' WHERE round_id = '2026-Q4'")
    fresh_db.commit()
    assert open_round(fresh_db, "2027-Q1", landing_root=landing, raw_root=tmp_path / "raw").round_seq


def test_two_rounds_started_at_once_leave_the_earlier_one_runnable(fresh_db, tmp_path):
    landing = _landing(tmp_path, "2026-Q4", "2027-Q1")
    url = engine.libpq_conninfo(engine.database_url())
    start = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def start_round(round_id: str) -> None:
        with psycopg.connect(url) as conn:
            start.wait()
            try:
                open_round(conn, round_id, landing_root=landing, raw_root=tmp_path / "raw")
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
