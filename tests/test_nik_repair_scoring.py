"""NIK-repair scoring rules, on hand-made candidate pairs (the SQL blocking is exercised on the
sample in test_sample_end_to_end)."""

from __future__ import annotations

import pandas as pd

from dtsen.validate.nik_repair import (
    differing_positions,
    normalise_names,
    pick_clear_winners,
    score_candidates,
)


def pairs(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=[
            "submission_pk",
            "line_no",
            "nik_text",
            "nama",
            "wilayah",
            "cand_nik",
            "cand_nama",
            "cand_wilayah",
        ],
    )


def test_old_spelling_and_case_are_folded_before_comparing():
    assert normalise_names(pd.Series(["DJOKO Soesilo", "Tjahjo  Koemolo"])).tolist() == [
        "joko susilo",
        "cahjo kumolo",
    ]


def test_a_clear_best_candidate_is_suggested():
    scored = score_candidates(
        pairs(
            [
                (
                    1,
                    5,
                    "3674012405800001",
                    "Joko Soesilo",
                    "3674011001",
                    "3674012305800001",
                    "Joko Susilo",
                    "3674011001",
                ),
                (
                    1,
                    5,
                    "3674012405800001",
                    "Joko Soesilo",
                    "3674011001",
                    "3674012305800002",
                    "Bambang Hartono",
                    "3674011002",
                ),
            ]
        )
    )
    winners = pick_clear_winners(scored)
    assert winners["cand_nik"].tolist() == ["3674012305800001"]
    assert winners["candidates"].tolist() == [2]


def test_two_equally_good_candidates_give_no_suggestion():
    scored = score_candidates(
        pairs(
            [
                (
                    1,
                    5,
                    "3674012405800009",
                    "Siti Aminah",
                    "",
                    "3674012305800001",
                    "Siti Aminah",
                    "3674011001",
                ),
                (
                    1,
                    5,
                    "3674012405800009",
                    "Siti Aminah",
                    "",
                    "3674012305800002",
                    "Siti Aminah",
                    "3674011002",
                ),
            ]
        )
    )
    assert pick_clear_winners(scored).empty


def test_a_different_name_gives_no_suggestion():
    scored = score_candidates(
        pairs([(1, 7, "3674012405800001", "Bayi Jal", "", "3674012305800001", "Rina Kusuma", "3674011001")])
    )
    assert pick_clear_winners(scored).empty


def test_differing_positions_name_positions_not_digits():
    got = differing_positions(pd.Series(["3674012405800001"]), pd.Series(["3674012305800001"]))
    assert got.tolist() == ["8"]
