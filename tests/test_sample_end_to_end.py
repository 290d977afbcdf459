"""The round's step list (the one the DAG runs) against the sample's ground truth: every injected case
rejected with exactly its code (precision and recall 1.0 per code), nothing else rejected, and after
each round the registry equals the expected registry for every person and family."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from dtsen.contract import FileKind
from dtsen.paths import SAMPLE_DIR
from dtsen.validate.run import Batch, run_authored_suite
from dtsen_dev.evaluate import RepairScore, score_nik_repairs
from tests.factories import objections_against_truth, rounds_against_truth, visits_against_truth

ROUNDS = ("2026-Q1", "2026-Q2", "2026-Q3")
GE_CODES = {
    "REQUIRED_MISSING",
    "NIK_FORMAT",
    "NIK_MISMATCH",
    "KK_FORMAT",
    "WILAYAH_UNKNOWN",
    "WILAYAH_OUT_OF_SCOPE",
    "CODE_OUT_OF_DOMAIN",
    "DATE_INVALID",
}


@pytest.fixture(scope="module")
def sample_rounds(module_warehouse, tmp_path_factory):
    """The three sample rounds, each through the whole step list, in a warehouse of their own."""
    conn = module_warehouse
    publish = tmp_path_factory.mktemp("publish")
    scores = rounds_against_truth(conn, SAMPLE_DIR, publish, ROUNDS)
    return conn, scores, publish


@pytest.mark.parametrize("round_id", ROUNDS)
def test_rejections_match_the_ground_truth_for_every_code(sample_rounds, round_id):
    _, scores, _ = sample_rounds
    _, rejection, _ = scores[round_id]
    assert rejection.missed == [] and rejection.unexpected == []
    for code, score in rejection.codes.items():
        assert (score.precision, score.recall) == (1.0, 1.0), code


@pytest.mark.parametrize("round_id", ROUNDS)
def test_registry_equals_the_expected_registry_after_each_round(sample_rounds, round_id):
    _, scores, _ = sample_rounds
    _, _, registry = scores[round_id]
    assert registry.samples == []
    assert registry.persons_actual == registry.persons_expected
    assert registry.families_actual == registry.families_expected


@pytest.mark.parametrize("round_id", ROUNDS[1:])
def test_every_objection_of_the_sample_joins_one_case_of_the_family_its_truth_names(sample_rounds, round_id):
    conn, _, _ = sample_rounds
    assert objections_against_truth(conn, SAMPLE_DIR / "truth" / round_id, round_id) == []


def test_the_samples_visits_close_its_objections_with_the_outcome_the_truth_implies(sample_rounds):
    conn, _, _ = sample_rounds
    assert visits_against_truth(conn, SAMPLE_DIR / "truth" / "2026-Q3", "2026-Q3") == []


def test_every_submission_merged_except_the_resubmitted_copies(sample_rounds):
    conn, _, _ = sample_rounds
    statuses = dict(
        conn.execute("SELECT submission_id, coalesce(reason_code, status) FROM ingest.submission").fetchall()
    )
    assert {v for k, v in statuses.items() if k.endswith("-02")} == {"DUPLICATE_SUBMISSION"}
    assert {v for k, v in statuses.items() if not k.endswith("-02")} == {"MERGED"}


def test_suite_results_agree_with_row_rejections_on_the_sample(sample_rounds):
    conn, _, _ = sample_rounds
    submissions = conn.execute(
        "SELECT s.submission_pk, s.round_seq, f.file_name, f.file_kind FROM ingest.submission s "
        "JOIN ingest.submission_file f USING (submission_pk) JOIN ingest.round r USING (round_seq) "
        "WHERE r.round_id = '2026-Q1' ORDER BY 1, 3"
    ).fetchall()
    assert submissions
    for pk, round_seq, file_name, kind in submissions:
        suite = run_authored_suite(conn, Batch(FileKind(kind), round_seq=round_seq, submission_pk=pk))
        from_ge = {f"{r.reason_code}/{r.field}": r.failed for r in suite.rules if r.failed}
        derived = dict(
            conn.execute(
                "SELECT reason_code || '/' || field, count(*) FROM quality.rejection WHERE submission_pk = %s "
                "AND file_name = %s AND reason_code = ANY(%s) GROUP BY 1",
                (pk, file_name, list(GE_CODES)),
            ).fetchall()
        )
        assert from_ge == derived, (pk, file_name)
        stored = conn.execute(
            "SELECT failed FROM quality.suite_result WHERE submission_pk = %s AND file_kind = %s", (pk, kind)
        ).fetchone()[0]
        assert stored == sum(1 for r in suite.rules if not r.success)


def test_feedback_is_written_for_every_submission(sample_rounds):
    conn, _, publish = sample_rounds
    for round_id, sub_id in conn.execute(
        "SELECT r.round_id, s.submission_id FROM ingest.submission s JOIN ingest.round r USING (round_seq)"
    ):
        folder = Path(publish) / "feedback" / round_id / sub_id
        assert (folder / "ringkasan.json").exists() and (folder / "ditolak.csv").exists()


def test_nik_repair_suggests_the_true_person_and_never_a_wrong_one(sample_rounds):
    conn, _, _ = sample_rounds
    total = RepairScore()
    for round_id in ROUNDS:
        score = score_nik_repairs(conn, SAMPLE_DIR / "truth" / round_id, round_id)
        for name in (
            "repairable",
            "unrepairable",
            "suggested",
            "correct",
            "wrong",
            "suggested_for_unrepairable",
        ):
            setattr(total, name, getattr(total, name) + getattr(score, name))
    assert total.repairable >= 10 and total.unrepairable >= 10  # the sample really exercises both
    assert total.wrong == 0 and total.suggested_for_unrepairable == 0
    assert total.precision == 1.0
    assert total.recall >= 0.9


def test_nik_repair_suggestion_reaches_the_region_masked(sample_rounds):
    conn, _, publish = sample_rounds
    round_id, sub_id, line, suggested, digits = conn.execute(
        "SELECT r.round_id, s.submission_id, n.line_no, n.suggested_nik::text, n.digits_differing "
        "FROM quality.nik_suggestion n JOIN ingest.submission s USING (submission_pk) "
        "JOIN ingest.round r ON r.round_seq = n.round_seq ORDER BY n.round_seq, s.submission_pk, n.line_no LIMIT 1"
    ).fetchone()
    ditolak = (Path(publish) / "feedback" / round_id / sub_id / "ditolak.csv").read_text(encoding="utf-8")
    row = next(r for r in csv.DictReader(io.StringIO(ditolak)) if r["line"] == str(line))
    assert f"************{suggested[-4:]}" in row["message"]
    assert f"digit ke-{digits}" in row["message"]
    assert suggested not in ditolak  # the full suggested NIK never leaves the warehouse


def test_head_dead_only_per_dukcapil_is_succeeded_by_the_system(sample_rounds):
    conn, scores, _ = sample_rounds
    for round_id in ROUNDS:
        with open(SAMPLE_DIR / "truth" / round_id / "cases.csv", encoding="utf-8") as fh:
            expected = sum(
                1
                for r in csv.DictReader(fh)
                if r["case"] == "UNREPORTED_HEAD_DEATH" and "becomes head" in r["note"]
            )
        result = scores[round_id][0]
        assert result["merge"]["changes"].get("heads succeeded (death by Dukcapil)", 0) == expected
    assert (
        conn.execute(
            "SELECT count(*) FROM registry.membership WHERE source = 'system' AND hubungan_keluarga = 1"
        ).fetchone()[0]
        >= 1
    )
