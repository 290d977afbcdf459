"""The sample's rounds run again after retention dropped their staged rows: nothing a region or a
program team received changes. And every round's merge summary adds up: the open registry before the
merge plus its lines is the open registry after it."""

from __future__ import annotations

import hashlib

import pytest

from dtsen.paths import SAMPLE_DIR
from tests.factories import run_steps

ROUNDS = ("2026-Q1", "2026-Q2", "2026-Q3")


def _open(conn) -> dict[str, int]:
    return {
        "persons": conn.execute("SELECT count(*) FROM registry.person WHERE is_open").fetchone()[0],
        "families": conn.execute("SELECT count(*) FROM registry.family WHERE is_open").fetchone()[0],
    }


def _tree(root) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def sample_rounds(module_warehouse, tmp_path_factory):
    """The three sample rounds, keeping the staged rows of the newest merged round only: when 2026-Q3
    opens, 2026-Q1's staging partitions are dropped."""
    conn = module_warehouse
    publish = tmp_path_factory.mktemp("publish")
    counts, summaries = [_open(conn)], {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_STAGING_KEEP_ROUNDS", "1")
        for round_id in ROUNDS:
            summaries[round_id] = run_steps(
                round_id, landing_root=SAMPLE_DIR / "landing", publish_root=publish
            )
            counts.append(_open(conn))
            conn.commit()
    return conn, publish, counts, summaries


@pytest.mark.parametrize("index", range(len(ROUNDS)), ids=ROUNDS)
def test_the_merge_summary_adds_up_to_the_registry_after_every_sample_round(sample_rounds, index):
    _, _, counts, summaries = sample_rounds
    lines = summaries[ROUNDS[index]]["merge"]["changes"]
    before, after = counts[index], counts[index + 1]
    assert (
        before["persons"]
        + lines["persons added"]
        + lines["persons re-added"]
        - lines["persons deceased"]
        - lines["persons closed (other reasons)"]
        == after["persons"]
    ), lines
    assert (
        before["families"] + lines["families added"] + lines["families re-added"] - lines["families closed"]
        == after["families"]
    ), lines


def test_the_sample_re_adds_a_person_removed_in_an_earlier_round(sample_rounds):
    """The case that made the summary not add up: a person removed in 2026-Q2 and added again in
    2026-Q3 is counted as re-added (not as added: the person existed)."""
    _, _, _, summaries = sample_rounds
    assert summaries["2026-Q3"]["merge"]["changes"]["persons re-added"] >= 1


def test_a_rerun_after_retention_rewrites_no_file_a_region_or_program_received(sample_rounds):
    conn, publish, _, _ = sample_rounds
    staged = conn.execute(
        "SELECT to_regclass('staging.pemda_anggota_r' || round_seq) FROM ingest.round WHERE round_id = '2026-Q1'"
    ).fetchone()[0]
    assert staged is None  # 2026-Q1's staged rows are gone: its keys could no longer be read from there
    before = _tree(publish)
    assert any(name.endswith("ditolak.csv") and "2026-Q1" in name for name in before)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_STAGING_KEEP_ROUNDS", "1")
        again = [run_steps(r, landing_root=SAMPLE_DIR / "landing", publish_root=publish) for r in ROUNDS]
    assert _tree(publish) == before
    assert all(
        r["feedback"]["submissions_reported"] == 0 and r["feedback"]["already_reported"] for r in again
    )
