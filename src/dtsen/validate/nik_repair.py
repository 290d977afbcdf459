"""NIK-repair suggestions: which Dukcapil person a rejected NIK most likely meant.

For pemda member rows rejected NIK_NOT_IN_DUKCAPIL or NIK_MISMATCH, candidates come from blocking in
SQL (sql/validate/nik_repair.sql: same birth date and sex, in the NIK's district or the family's) and
are scored here with RapidFuzz, vectorised over all candidate pairs of a batch:

- name similarity: token-sort ratio after folding the old Indonesian spelling (oe/dj/tj/j) and case,
  so "Soesilo" matches "Susilo" and word order does not matter;
- small bonuses when the candidate lives in the family's village and when at most two NIK digits
  differ (the usual typing slip).

A suggestion is made only when one candidate is clearly best: name similarity at least
MIN_NAME_SIMILARITY and a lead of at least MIN_MARGIN over the runner-up. It is advice for the
region (masked in the feedback); nothing in the registry changes. Why RapidFuzz over Splink: the
candidate sets are tiny once blocked on birth date, sex and district, so a transparent scored rule
is enough, needs no training data, and runs in milliseconds; Splink's EM estimation would add a
DuckDB/Spark dependency for no measurable gain here (see the precision/recall in the issue note).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Hamming

from dtsen.sqlfiles import statements

log = logging.getLogger(__name__)

MIN_NAME_SIMILARITY = 0.85
MIN_MARGIN = 0.10
VILLAGE_BONUS = 0.05
FEW_DIGITS_BONUS = 0.05
BATCH_ROWS = 20_000  # rows to repair per candidate query: bounds memory whatever the round's size

# pre-1972 spellings still found on documents, folded to the current ones before comparing
OLD_SPELLING = (("oe", "u"), ("dj", "j"), ("tj", "c"), ("sj", "sy"), ("ch", "kh"), ("nj", "ny"))

SUGGESTION_COLUMNS = (
    "round_seq",
    "submission_pk",
    "file_name",
    "line_no",
    "suggested_nik",
    "name_similarity",
    "score",
    "margin",
    "candidates",
    "digits_differing",
)


def normalise_names(names: pd.Series) -> pd.Series:
    out = names.fillna("").str.lower().str.replace(r"[^a-z ]+", " ", regex=True)
    for old, new in OLD_SPELLING:
        out = out.str.replace(old, new, regex=False)
    return out.str.split().str.join(" ")


def score_candidates(pairs: pd.DataFrame) -> pd.DataFrame:
    """Score candidate pairs (columns nik_text, nama, wilayah, cand_nik, cand_nama, cand_wilayah)."""
    names = process.cpdist(
        normalise_names(pairs["nama"]).tolist(),
        normalise_names(pairs["cand_nama"]).tolist(),
        scorer=fuzz.token_sort_ratio,
        workers=1,
    )
    digits = process.cpdist(
        pairs["nik_text"].tolist(), pairs["cand_nik"].tolist(), scorer=Hamming.distance, workers=1
    )
    scored = pairs.assign(name_similarity=np.asarray(names, dtype=float) / 100.0, digits=np.asarray(digits))
    village = (scored["wilayah"] != "") & (scored["wilayah"] == scored["cand_wilayah"])
    scored["score"] = (
        scored["name_similarity"] + VILLAGE_BONUS * village + FEW_DIGITS_BONUS * (scored["digits"] <= 2)
    )
    return scored


def pick_clear_winners(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per repaired input row whose best candidate is clearly best."""
    ranked = scored.sort_values(
        ["submission_pk", "line_no", "score", "cand_nik"], ascending=[True, True, False, True]
    )
    grouped = ranked.groupby(["submission_pk", "line_no"], sort=False)
    best = grouped.head(1).set_index(["submission_pk", "line_no"])
    runner_up = grouped.nth(1).set_index(["submission_pk", "line_no"])["score"]
    best["candidates"] = grouped.size()
    best["margin"] = (best["score"] - runner_up.reindex(best.index)).fillna(1.0)
    clear = best[(best["name_similarity"] >= MIN_NAME_SIMILARITY) & (best["margin"] >= MIN_MARGIN)]
    return clear.reset_index()


def differing_positions(submitted: pd.Series, suggested: pd.Series) -> pd.Series:
    """1-based positions where two 16-digit NIKs differ, as '7,8' (positions only: no digits)."""
    a = np.frombuffer("".join(submitted).encode(), dtype=np.uint8).reshape(-1, 16)
    b = np.frombuffer("".join(suggested).encode(), dtype=np.uint8).reshape(-1, 16)
    positions = np.arange(1, 17).astype(str)
    return pd.Series([",".join(positions[row]) for row in a != b], index=submitted.index, dtype=str)


@dataclass
class RepairOutcome:
    rows_considered: int = 0
    candidate_pairs: int = 0
    suggestions: int = 0


def suggest_nik_repairs(conn: psycopg.Connection, round_seq: int, snapshot_pk: int | None) -> RepairOutcome:
    """Compute and store the round's NIK-repair suggestions (replacing any earlier ones)."""
    outcome = RepairOutcome()
    conn.execute("DELETE FROM quality.nik_suggestion WHERE round_seq = %s", (round_seq,))
    if snapshot_pk is None:
        return outcome
    sql = statements("validate/nik_repair.sql")
    params = {"round_seq": round_seq, "snapshot_pk": snapshot_pk, "batch_rows": BATCH_ROWS}
    for name in ("query_rows", "family_region_from_submission", "family_region_from_registry", "blocks"):
        conn.execute(sql[name], params)
    outcome.rows_considered = conn.execute("SELECT count(*) FROM nik_repair_query").fetchone()[0]
    last_batch = conn.execute(sql["batches"]).fetchone()[0]
    for batch in range(last_batch + 1):
        cur = conn.execute(sql["candidates"], {**params, "batch": batch})
        pairs = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
        outcome.candidate_pairs += len(pairs)
        if pairs.empty:
            continue
        winners = pick_clear_winners(score_candidates(pairs))
        if winners.empty:
            continue
        winners["digits_differing"] = differing_positions(winners["nik_text"], winners["cand_nik"])
        out = pd.DataFrame(
            {
                "round_seq": round_seq,
                "submission_pk": winners["submission_pk"],
                "file_name": "anggota.csv",
                "line_no": winners["line_no"],
                "suggested_nik": winners["cand_nik"],
                "name_similarity": winners["name_similarity"].round(4),
                "score": winners["score"].round(4),
                "margin": winners["margin"].round(4),
                "candidates": winners["candidates"],
                "digits_differing": winners["digits_differing"],
            }
        )
        buffer = io.StringIO()
        out.to_csv(buffer, index=False, header=False)
        with (
            conn.cursor() as cur,
            cur.copy(
                f"COPY quality.nik_suggestion ({', '.join(SUGGESTION_COLUMNS)}) FROM STDIN (FORMAT csv)"
            ) as copy,
        ):
            copy.write(buffer.getvalue())
        outcome.suggestions += len(out)
    log.info(
        "NIK repair: %d rejected rows, %d candidate pairs, %d suggestions",
        outcome.rows_considered,
        outcome.candidate_pairs,
        outcome.suggestions,
    )
    return outcome
