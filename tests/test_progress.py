"""Progress while a round runs (issue 27, item 4): each statement of the merge, the candidate build and
the Dukcapil comparison, and each file a version publishes, logs at INFO as it finishes its stage, k of n, its name, rows and seconds, the
time so far and what remains (estimated from what the same statements took last time, when there is a
last time), with no personal data; and the round itself logs each of its steps, k of n. The sample's first two rounds through the step list."""

from __future__ import annotations

import logging
import re

import pytest

from dtsen import sqlfiles
from dtsen.merge import person_scratch_parts
from dtsen.paths import SAMPLE_DIR
from tests.factories import run_steps

LINE = re.compile(
    r"^(?P<stage>.+): (?P<k>\d+)/(?P<n>\d+) (?P<name>[a-z0-9_./# ]+): (?P<rows>[\d,]+|-) rows in "
    r"(?P<seconds>\d+\.\d) s; \d+\.\d s so far, (?P<left>done|about \d+ s to go)$"
)
SESSIONS = 2


@pytest.fixture(scope="module")
def progress_lines(module_warehouse, tmp_path_factory):
    work = tmp_path_factory.mktemp("progress")
    lines: dict[str, list[str]] = {}

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.setdefault(round_id, []).append(record.getMessage())

    logger = logging.getLogger("dtsen.progress")
    handler, level = Keep(level=logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DTSEN_OUTBOX", str(work / "outbox"))
            env.setenv("DTSEN_WRITE_SESSIONS", str(SESSIONS))
            for round_id in ("2026-Q1", "2026-Q2"):
                run_steps(round_id, landing_root=SAMPLE_DIR / "landing", publish_root=work / "publish")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    module_warehouse.commit()
    return lines


def _stage(lines: list[str], prefix: str) -> list[re.Match]:
    found = [LINE.match(line) for line in lines if line.startswith(prefix)]
    assert found and all(found), [line for line in lines if line.startswith(prefix)]
    return found


@pytest.mark.parametrize("round_id, seq", [("2026-Q1", 1), ("2026-Q2", 2)])
def test_every_merge_statement_reports_itself_in_order_as_it_finishes(progress_lines, round_id, seq):
    """The per-person scratch first, each share's statements as that share finishes them (the sessions
    run at once), then the merge's own statements in order."""
    merge = _stage(progress_lines[round_id], f"merge of round #{seq}")
    shares = person_scratch_parts(SESSIONS)
    names = [s.name for s in sqlfiles.load("merge/merge_round.sql")]
    assert sorted(m["name"] for m in merge[: len(shares)]) == sorted(shares)
    assert "person_new share 2/2" in shares
    assert [m["name"] for m in merge[len(shares) :]] == names
    assert [int(m["k"]) for m in merge] == list(range(1, len(shares) + len(names) + 1))
    assert {int(m["n"]) for m in merge} == {len(shares) + len(names)}
    assert [m["left"] for m in merge][-1] == "done"
    assert all(m["left"].startswith("about ") for m in merge[:-1])


def test_the_candidate_build_and_the_dukcapil_comparison_report_their_statements(progress_lines):
    first, second = progress_lines["2026-Q1"], progress_lines["2026-Q2"]
    whole = _stage(first, "candidate v1 (whole)")
    incremental = _stage(second, "candidate v2 (incremental)")
    assert whole[-1]["left"] == incremental[-1]["left"] == "done"
    assert {"all_persons", "all_families"} <= {m["name"] for m in whole}
    assert {"changed_persons"} <= {m["name"] for m in incremental}
    assert _stage(first, "Dukcapil snapshot #1: writing") and _stage(second, "Dukcapil snapshot #2: sorting")
    files = _stage(second, "version 2: files")
    assert {"keluarga.parquet", "anggota.parquet", "programs/pbi_jk.parquet"} <= {m["name"] for m in files}
    assert sorted(int(m["k"]) for m in files) == list(range(1, len(files) + 1))


def test_each_file_a_submission_stages_and_validates_reports_its_rows(progress_lines):
    lines = progress_lines["2026-Q2"]
    staging = [line for line in lines if ": staging: " in line]
    validating = [line for line in lines if ": validating: " in line]
    assert staging and validating
    staged = [LINE.match(line) for line in staging]
    assert all(staged) and {"keluarga.csv", "anggota.csv"} <= {m["name"] for m in staged}
    assert all(m["rows"] != "-" for m in staged)
    checked = [LINE.match(line) for line in validating]
    assert all(checked) and all(m["rows"] != "-" for m in checked)
    # the files of one submission, k of n, the last one "done"
    first = [m for m in staged if m["stage"] == staged[0]["stage"]]
    assert [int(m["k"]) for m in first] == list(range(1, int(first[0]["n"]) + 1)) and first[-1][
        "left"
    ] == "done"


def test_the_audit_the_feedback_and_the_extract_report_their_parts(progress_lines):
    second = progress_lines["2026-Q2"]
    audit = _stage(second, "audit of candidate v2")
    assert {m["name"].rsplit(" ", 1)[1] for m in audit} == {"computed", "checked"}
    assert int(audit[0]["n"]) == len(audit) and audit[-1]["left"] == "done"
    feedback = _stage(second, "feedback of round #2")
    assert all(m["name"].startswith(("submission #", "refused entry #")) for m in feedback)
    assert int(feedback[-1]["k"]) == int(feedback[-1]["n"]) and feedback[-1]["left"] == "done"
    (extract,) = _stage(second, "Dukcapil snapshot #2: reading the extract")
    assert extract["name"] == "read_and_compare" and int(extract["rows"].replace(",", "")) > 0
    checked = _stage(progress_lines["2026-Q1"], "Dukcapil snapshot #1: validating its differing lines")
    assert checked[0]["name"] == "flag_rows" and checked[-1]["left"] == "done"


def test_a_step_run_as_an_airflow_task_says_where_it_stands_in_the_round(caplog):
    from dtsen.progress import step_finished
    from dtsen.round import STEPS

    names = [s.name for s in STEPS]
    with caplog.at_level(logging.INFO, logger="dtsen.progress"):
        step_finished("round 2026-Q2", names, "merge", 14.24)
        step_finished("round 2026-Q2", names, "stage_and_validate", 2.0, "sub-01")
        step_finished("version 3", names, "notify_programs", 0.31)
    assert caplog.messages == [
        f"round 2026-Q2: step {names.index('merge') + 1}/{len(names)} merge: done in 14.2 s",
        f"round 2026-Q2: step {names.index('stage_and_validate') + 1}/{len(names)} stage_and_validate (sub-01): done in 2.0 s",
        "version 3: step notify_programs: done in 0.3 s",
    ]


def test_the_round_reports_each_of_its_steps_out_of_all_of_them(progress_lines):
    from dtsen.round import STEPS

    steps = _stage(progress_lines["2026-Q2"], "round 2026-Q2")
    assert [m["name"] for m in steps] == [s.name for s in STEPS]
    assert {int(m["n"]) for m in steps} == {len(STEPS)} and steps[-1]["left"] == "done"


def test_progress_lines_carry_no_personal_data(progress_lines):
    every = [line for lines in progress_lines.values() for line in lines]
    assert every and not [line for line in every if re.search(r"\d{16}", line.replace(",", ""))]
