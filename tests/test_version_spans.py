"""Versions stored as spans and built from what changed (issue 12, part 4).

The sample rounds are published one after another in a warehouse of their own. After each round, the
version just built from the previous one's differences is compared with a whole rebuild of the same
round (discarding it and building again inside a transaction that is rolled back): every family,
member and recipient, the counts and the program changes must be the same.
"""

from __future__ import annotations

import pytest

from dtsen.paths import SAMPLE_DIR
from dtsen.programs import load_programs
from dtsen.publish.candidate import age_thresholds, build_candidate, ranking_statements
from dtsen.rank.model import load_model
from tests.factories import run_steps, version_rows

TABLES = {
    "keluarga": "no_kk",
    "anggota": "nik",
    "recipient": "program, nik",
    "implausible": "rule, no_kk",
}


def _whole_rebuild_equals(conn, version: int) -> None:
    """Discard `version`, build its round again (whole, since its basis is discarded) and compare."""
    with conn.transaction(force_rollback=True):
        round_id, round_seq, counts, programs, previous = conn.execute(
            "SELECT r.round_id, r.round_seq, v.counts, v.programs, v.previous_version FROM publish.version v "
            "JOIN ingest.round r ON r.round_seq = v.round_seq WHERE v.version = %s",
            (version,),
        ).fetchone()
        conn.execute("UPDATE publish.version SET status = 'DISCARDED' WHERE version = %s", (version,))
        conn.execute("UPDATE ingest.round SET status = 'MERGED' WHERE round_seq = %s", (round_seq,))
        conn.execute("UPDATE publish.version SET status = 'PUBLISHED' WHERE version = %s", (previous,))
        rebuilt = build_candidate(conn, round_id, load_model(), load_programs())
        assert rebuilt.build["mode"] == "whole"
        for table in TABLES:
            incremental, whole = (
                version_rows(conn, table, version),
                version_rows(conn, table, rebuilt.version),
            )
            assert len(incremental) == len(whole) > 0, table
            assert incremental == whole, table
        assert rebuilt.counts == counts
        assert rebuilt.programs == programs


@pytest.fixture(scope="module")
def sample_warehouse(module_warehouse, tmp_path_factory):
    return module_warehouse, tmp_path_factory.mktemp("publish")


def test_each_round_builds_from_the_previous_version_what_a_whole_rebuild_builds(sample_warehouse):
    conn, publish_root = sample_warehouse
    for version, round_id in enumerate(("2026-Q1", "2026-Q2", "2026-Q3"), start=1):
        run_steps(round_id, landing_root=SAMPLE_DIR / "landing", publish_root=publish_root)
        build = conn.execute("SELECT build FROM publish.version WHERE version = %s", (version,)).fetchone()[0]
        assert build["mode"] == ("whole" if version == 1 else "incremental"), build
        if version > 1:
            _whole_rebuild_equals(conn, version)
    conn.rollback()


def test_a_version_stores_only_the_rows_that_changed(sample_warehouse):
    conn, _ = sample_warehouse
    for table, key in TABLES.items():
        total, opened_later = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE valid_from > 1) FROM publish.{table}_span"  # noqa: S608
        ).fetchone()
        in_v3 = conn.execute(f"SELECT count(*) FROM publish.{table} WHERE version = 3").fetchone()[0]  # noqa: S608
        # three versions in fewer rows than two full copies: later versions wrote what changed
        assert total < 2 * in_v3, table
        assert 0 < opened_later < in_v3 / 2, table
        # one current row per record, and every version reads without duplicates
        for version in (1, 2, 3):
            rows, keys = conn.execute(
                f"SELECT count(*), count(DISTINCT ({key})) FROM publish.{table} WHERE version = %s",  # noqa: S608
                (version,),
            ).fetchone()
            assert rows == keys, (table, version)
    conn.rollback()


def test_reading_one_person_of_a_version_is_one_index_lookup(sample_warehouse):
    conn, _ = sample_warehouse
    nik = conn.execute("SELECT nik FROM publish.anggota WHERE version = 2 LIMIT 1").fetchone()[0]
    plan = "\n".join(
        r[0]
        for r in conn.execute(
            "EXPLAIN SELECT * FROM publish.anggota WHERE version = 2 AND nik = %s", (nik,)
        ).fetchall()
    )
    assert "anggota_span_pkey" in plan or "anggota_span_current" in plan, plan
    assert "Seq Scan on anggota_span" not in plan, plan
    conn.rollback()


def test_the_rules_ages_are_found_in_the_generated_sql():
    generated = [text for _, text in ranking_statements(load_model(), load_programs())]
    # ranking: under 15, 60 and over, 18 and over, 7-18 in school; Sekolah Rakyat: aged 6-18;
    # PKH's components: a child 0-6, a child 6-21 in school, a member 60 or over
    assert age_thresholds(generated) == (0, 6, 7, 15, 18, 19, 22, 60)


def test_a_rule_reading_age_some_other_way_makes_the_build_whole():
    assert age_thresholds(["SELECT avg((m.umur < 15)::int)"]) == (15,)
    assert age_thresholds(["SELECT m.umur % 5 = 0"]) is None
    assert age_thresholds(["WHERE x.d > %(reference_date)s::date + 1"]) is None


def test_files_written_in_parallel_streams_equal_those_written_in_one(sample_warehouse, tmp_path):
    from dtsen.publish.version import write_version_files

    conn, _ = sample_warehouse
    programs = sorted(p.id for p in load_programs().programs)
    conn.commit()  # a transaction that has not written: its snapshot can be shared
    one, _, one_rows = write_version_files(conn, 3, 2, programs, tmp_path / "one", streams=1)
    conn.commit()
    three, _, three_rows = write_version_files(conn, 3, 2, programs, tmp_path / "three", streams=3)
    conn.commit()
    assert list(three) == list(one) and len(one) == 3 + len(programs)
    assert three == one and three_rows == one_rows


def test_the_audit_catches_a_broken_invariant_among_the_changed_rows_and_constraints_hold_the_rest(
    sample_warehouse,
):
    import psycopg

    from dtsen.publish.audit import audit_version

    conn, _ = sample_warehouse
    with conn.transaction(force_rollback=True):
        previous = conn.execute("SELECT previous_version FROM publish.version WHERE version = 3").fetchone()[
            0
        ]
        conn.execute("UPDATE publish.version SET status = 'DISCARDED' WHERE version = 3")
        conn.execute("UPDATE publish.version SET status = 'PUBLISHED' WHERE version = %s", (previous,))
        conn.execute("UPDATE ingest.round SET status = 'MERGED' WHERE round_id = '2026-Q3'")
        rebuilt = build_candidate(conn, "2026-Q3", load_model(), load_programs())
        # a second head, on a member whose row changed since the previous published version
        changed = conn.execute(
            "SELECT nik FROM publish.anggota_span WHERE valid_from > %s AND valid_to IS NULL "
            "AND hubungan_keluarga <> 1 LIMIT 1",
            (previous,),
        ).fetchone()[0]
        conn.execute(
            "UPDATE publish.anggota_span SET hubungan_keluarga = 1 WHERE nik = %s AND valid_to IS NULL",
            (changed,),
        )
        outcome = audit_version(conn, rebuilt.version)
        assert outcome.status == "BLOCKED"
        assert [c["rule"] for c in outcome.checks if not c["success"]] == ["one_head_per_family"]
        # an untouched row is not re-read, but a second current row for a NIK cannot exist at all
        conn.execute(
            "CREATE TEMP TABLE twin ON COMMIT DROP AS SELECT * FROM publish.anggota_span "
            "WHERE valid_from = 1 AND valid_to IS NULL LIMIT 1"
        )
        conn.execute("UPDATE twin SET valid_from = %s", (rebuilt.version + 1,))
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute("INSERT INTO publish.anggota_span SELECT * FROM twin")
