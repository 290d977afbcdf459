"""Every BPS measurement is kept with its date (registry.bps_measurement): the sample's rounds record
exactly their accepted BPS rows that carry an expenditure, a row without one records nothing (while
the family's survey date moves), nothing is recorded twice, and the migration's backfill finds each
family's current measurement with the round and survey date that brought it."""

from __future__ import annotations

import pytest

from dtsen import sqlfiles
from dtsen.paths import SAMPLE_DIR
from dtsen.warehouse.migrate import MIGRATIONS_DIR
from tests.factories import land_bps_round, run_steps

ROUNDS = ("2026-Q1", "2026-Q2", "2026-Q3")

ACCEPTED_WITH_EXPENDITURE = """
SELECT s.no_kk::bigint, s.tanggal_survei::date, s.pengeluaran_per_kapita::bigint, s.submission_pk
FROM staging.bps_keluarga s
JOIN ingest.submission sub ON sub.submission_pk = s.submission_pk AND sub.status = 'MERGED'
WHERE s.round_seq = %(r)s AND nullif(s.pengeluaran_per_kapita, '') IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM quality.rejection q WHERE q.round_seq = %(r)s
                  AND q.submission_pk = s.submission_pk AND q.file_name = 'keluarga.csv' AND q.line_no = s.line_no)
"""
RECORDED = """
SELECT no_kk, tanggal_survei, pengeluaran_per_kapita, submission_pk FROM registry.bps_measurement
WHERE round_seq = %(r)s
"""


def _round_seq(conn, round_id: str) -> int:
    return conn.execute("SELECT round_seq FROM ingest.round WHERE round_id = %s", (round_id,)).fetchone()[0]


@pytest.fixture(scope="module")
def sample_merged(module_warehouse, tmp_path_factory):
    """The sample's three rounds merged; per round, its accepted BPS rows with expenditure (read from
    staging right after its merge, before retention may drop them) and what the table recorded."""
    conn = module_warehouse
    publish = tmp_path_factory.mktemp("publish")
    expected, recorded = {}, {}
    for round_id in ROUNDS:
        run_steps(round_id, landing_root=SAMPLE_DIR / "landing", publish_root=publish, until="merge")
        r = _round_seq(conn, round_id)
        expected[round_id] = set(conn.execute(ACCEPTED_WITH_EXPENDITURE, {"r": r}).fetchall())
        recorded[round_id] = set(conn.execute(RECORDED, {"r": r}).fetchall())
        conn.commit()
    return conn, publish, expected, recorded


@pytest.mark.parametrize("round_id", ROUNDS)
def test_each_sample_round_records_exactly_its_accepted_bps_rows_with_expenditure(sample_merged, round_id):
    _, _, expected, recorded = sample_merged
    assert len(expected[round_id]) > 40  # the sample's BPS submission of the round, less its rejections
    assert recorded[round_id] == expected[round_id]


def test_the_round_may_append_measurements_but_never_change_them(sample_merged):
    conn = sample_merged[0]
    rights = conn.execute(
        "SELECT has_table_privilege('dtsen_round', 'registry.bps_measurement', p) "
        "FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p"
    ).fetchall()
    assert [r[0] for r in rights] == [True, True, False, False, False]


@pytest.fixture(scope="module")
def survey_without_expenditure(sample_merged, tmp_path_factory):
    """A round 2026-Q4 whose BPS submission surveys one measured family without an expenditure (its
    survey date moves, its expenditure stays: a stale pair on registry.family) and measures another."""
    conn, publish, _, _ = sample_merged
    stale, measured = conn.execute(
        "SELECT f.no_kk, f.kode_wilayah, f.tanggal_survei, f.pengeluaran_per_kapita FROM registry.family f "
        "WHERE f.is_open AND f.pengeluaran_per_kapita IS NOT NULL AND f.no_kk IN "
        "((SELECT min(no_kk) FROM registry.bps_measurement), (SELECT max(no_kk) FROM registry.bps_measurement)) "
        "ORDER BY f.no_kk"
    ).fetchall()
    before = conn.execute("SELECT count(*) FROM registry.bps_measurement").fetchone()[0]
    conn.commit()
    landing = land_bps_round(
        tmp_path_factory.mktemp("q4") / "landing",
        "2026-Q4",
        [f"{stale[0]},{stale[1]},2026-10-15,,", f"{measured[0]},{measured[1]},2026-10-16,,987654"],
    )
    run_steps("2026-Q4", landing_root=landing, publish_root=publish, until="merge")
    conn.commit()
    return conn, landing, publish, stale, measured[0], before


def test_a_bps_row_without_expenditure_records_nothing_and_a_rerun_records_nothing_twice(
    survey_without_expenditure,
):
    conn, landing, publish, (stale, _, stale_date, stale_ppk), measured, before = survey_without_expenditure
    q4 = _round_seq(conn, "2026-Q4")
    assert conn.execute("SELECT count(*) FROM quality.rejection WHERE round_seq = %s", (q4,)).fetchone() == (
        0,
    )
    # the family without expenditure: its survey date moved on the family, its measurement did not
    family = conn.execute(
        "SELECT tanggal_survei::text, pengeluaran_per_kapita FROM registry.family WHERE no_kk = %s", (stale,)
    ).fetchone()
    assert family == ("2026-10-15", stale_ppk)
    kept = conn.execute(
        "SELECT tanggal_survei, pengeluaran_per_kapita FROM registry.bps_measurement WHERE no_kk = %s",
        (stale,),
    ).fetchall()
    assert kept == [(stale_date, stale_ppk)]
    new = conn.execute(RECORDED, {"r": q4}).fetchall()
    assert [(n[0], str(n[1]), n[2]) for n in new] == [(measured, "2026-10-16", 987654)]
    assert conn.execute("SELECT count(*) FROM registry.bps_measurement").fetchone()[0] == before + 1
    conn.commit()

    # the round's merge run again is refused as done; the merge's statement itself, run again over
    # the same accepted rows, adds nothing
    run_steps("2026-Q4", landing_root=landing, publish_root=publish, only=("merge",))
    assert conn.execute("SELECT count(*) FROM registry.bps_measurement").fetchone()[0] == before + 1
    merge_sql = sqlfiles.statements("merge/merge_round.sql")
    with conn.transaction(force_rollback=True):
        conn.execute("UPDATE ingest.submission SET status = 'VALIDATED' WHERE round_seq = %s", (q4,))
        conn.execute(merge_sql["accepted_bps"], {"round_seq": q4})
        assert conn.execute(merge_sql["bps_measurements"], {"round_seq": q4}).rowcount == 0
        assert conn.execute("SELECT count(*) FROM registry.bps_measurement").fetchone()[0] == before + 1


def test_the_migrations_backfill_finds_each_familys_measurement_with_its_round_and_date(
    survey_without_expenditure,
):
    """On a warehouse that merged rounds before the table existed, the backfill records each family's
    current measurement as the merges recorded it (round, survey date, expenditure), also for the
    family whose survey date a later row without expenditure moved."""
    conn, stale = survey_without_expenditure[0], survey_without_expenditure[3]
    latest = """SELECT DISTINCT ON (no_kk) no_kk, tanggal_survei, pengeluaran_per_kapita, round_seq, submission_pk
                FROM registry.bps_measurement ORDER BY no_kk, round_seq DESC"""
    merged = {r[0]: r[1:] for r in conn.execute(latest)}
    migration = next(MIGRATIONS_DIR.glob("0035_*.sql")).read_text()
    with conn.transaction(force_rollback=True):
        conn.execute("DROP TABLE registry.bps_measurement")
        conn.execute(migration)
        backfilled = {r[0]: r[1:] for r in conn.execute(latest)}
        families = conn.execute(
            "SELECT count(*) FROM registry.family WHERE pengeluaran_per_kapita IS NOT NULL"
        ).fetchone()[0]
    assert len(backfilled) == families == len(merged) > 100
    assert {k: v[:3] for k, v in backfilled.items()} == {k: v[:3] for k, v in merged.items()}
    assert backfilled[stale[0]][:2] == (stale[2], stale[3])  # not the family's moved date
    # the submission is known when a field change recorded it, else (created with it) left NULL
    assert all(b[3] in (None, merged[k][3]) for k, b in backfilled.items())
    assert sum(b[3] is not None for b in backfilled.values()) > 0
