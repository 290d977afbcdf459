"""Which of two byte-identical submissions of a round is the duplicate follows the deliveries (earliest
`submitted_at`, then the lowest submission_id), never the order their tasks happen to run in; the
duplicate's ringkasan.json names the submission it duplicated."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dtsen.round import RoundContext, feedback, open_round, stage_and_validate
from tests.factories import ROUND, make_submission

EARLY, LATE = "2026-05-10T08:00:00+07:00", "2026-05-14T09:30:00+07:00"


def _deliver(landing, submitted_at: dict[str, str]) -> None:
    for sub_id, at in submitted_at.items():
        make_submission(landing, sub_id, submitted_at=at)


def _stage_in_order(landing, publish, order: list[str]) -> dict[str, dict]:
    ctx = RoundContext.create(ROUND, landing_root=landing, publish_root=publish)
    listed = {s["submission_id"]: s for s in open_round(ctx)["submissions"]}
    return {sub_id: stage_and_validate(replace(ctx, submission=listed[sub_id])) for sub_id in order}


@pytest.mark.parametrize(
    ("submitted_at", "original", "duplicate"),
    [
        ({"3273-2026Q2-01": LATE, "3273-2026Q2-02": EARLY}, "3273-2026Q2-02", "3273-2026Q2-01"),
        ({"3273-2026Q2-01": LATE, "3273-2026Q2-02": LATE}, "3273-2026Q2-01", "3273-2026Q2-02"),
    ],
    ids=["earlier-submitted-wins", "same-time-lower-id-wins"],
)
@pytest.mark.parametrize("original_runs_first", [True, False], ids=["original-first", "duplicate-first"])
def test_the_duplicate_is_the_later_delivery_whatever_order_the_tasks_run_in(
    fresh_db, tmp_path, monkeypatch, submitted_at, original, duplicate, original_runs_first
):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    landing, publish = tmp_path / "landing", tmp_path / "publish"
    _deliver(landing, submitted_at)
    order = [original, duplicate] if original_runs_first else [duplicate, original]
    staged = _stage_in_order(landing, publish, order)

    assert staged[duplicate]["reason_code"] == "DUPLICATE_SUBMISSION"
    assert staged[original]["status"] == "STAGED" or staged[original]["reason_code"] != "DUPLICATE_SUBMISSION"
    points_to = fresh_db.execute(
        "SELECT o.submission_id FROM ingest.submission d JOIN ingest.submission o ON o.submission_pk = d.duplicate_of "
        "WHERE d.submission_id = %s",
        (duplicate,),
    ).fetchone()
    assert points_to == (original,)

    feedback(RoundContext.create(ROUND, landing_root=landing, publish_root=publish))
    report = json.loads((publish / "feedback" / ROUND / duplicate / "ringkasan.json").read_text())
    assert report["status"] == "REJECTED" and report["reasons"] == {"DUPLICATE_SUBMISSION": 2}
    assert report["duplikat_dari"] == {"submission_id": original, "round_id": ROUND}
    assert original in report["keterangan"]


@pytest.mark.parametrize(
    "invalid", [{"round_id": "2026-Q1"}, {"kode_wilayah": "3299"}], ids=["other-round", "unknown-regency"]
)
def test_an_identical_copy_whose_manifest_is_invalid_is_no_original(fresh_db, tmp_path, monkeypatch, invalid):
    """The earlier-submitted copy is refused for its manifest (a round_id not its folder's, a regency
    Kepmendagri does not know): the later one is not a duplicate of it, though its task runs first."""
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    landing, publish = tmp_path / "landing", tmp_path / "publish"
    make_submission(landing, "3273-2026Q2-01", submitted_at=EARLY, **invalid)
    make_submission(landing, "3273-2026Q2-02", submitted_at=LATE)
    staged = _stage_in_order(landing, publish, ["3273-2026Q2-02", "3273-2026Q2-01"])
    assert staged["3273-2026Q2-01"]["reason_code"] == "MANIFEST_INVALID"
    assert staged["3273-2026Q2-02"]["reason_code"] != "DUPLICATE_SUBMISSION"
