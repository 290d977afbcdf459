"""Migrations and reference seeding against a real PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from dtsen import contract
from dtsen.warehouse import engine
from dtsen.warehouse.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(engine.libpq_conninfo(url))


def test_migrate_twice_applies_each_migration_exactly_once(scratch_database):
    url = scratch_database("twice", empty=True)
    with _connect(url) as conn:
        first = migrate(conn)
        second = migrate(conn)
        recorded = conn.execute("SELECT name FROM meta.schema_migration ORDER BY version").fetchall()
    expected = [m.name for m in discover()]
    assert first.applied == expected
    assert second.applied == [] and second.already == expected
    assert [r[0] for r in recorded] == expected
    assert first.reference_loaded and not second.reference_loaded


def test_editing_an_applied_migration_is_refused(scratch_database, tmp_path: Path):
    url = scratch_database("edited", empty=True)
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations)
    with _connect(url) as conn:
        migrate(conn, directory=migrations)
        first = sorted(migrations.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited after it was applied\n")
        with pytest.raises(MigrationError, match="applied with different content"):
            migrate(conn, directory=migrations)


def test_badly_named_migration_is_refused(tmp_path: Path):
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        discover(tmp_path)


def test_reference_holds_the_complete_kemendagri_2025_code_list(db):
    counts = db.execute(
        "SELECT (SELECT count(*) FROM ref.provinsi), (SELECT count(*) FROM ref.kabupaten), "
        "(SELECT count(*) FROM ref.kecamatan), (SELECT count(*) FROM ref.desa)"
    ).fetchone()
    assert counts == (38, 514, 7285, 83762)
    # every village resolves to a district, regency and province with names
    assert db.execute("SELECT count(*) FROM ref.wilayah_lengkap").fetchone()[0] == 83762
    kota = db.execute("SELECT nama FROM ref.kabupaten WHERE kode = '3273'").fetchone()[0]
    assert kota == "Kota Bandung"


def test_reason_codes_are_seeded_from_the_contract(db):
    rows = dict(db.execute("SELECT code, level FROM quality.reason_code").fetchall())
    assert rows == {r.code: r.level.value for r in contract.REASONS}


def test_registry_enforces_one_open_membership_per_nik(db):
    db.execute(
        "INSERT INTO registry.membership (nik, no_kk, hubungan_keluarga, valid_from_round) "
        "VALUES (3273014101900001, 3273010101200001, 1, 1)"
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(
            "INSERT INTO registry.membership (nik, no_kk, hubungan_keluarga, valid_from_round) "
            "VALUES (3273014101900001, 3273010101200002, 3, 2)"
        )


def test_round_partitions_are_created_idempotently(db, round_id):
    insert = "INSERT INTO ingest.round (round_id) VALUES (%s) RETURNING round_seq"
    seq = db.execute(insert, (round_id,)).fetchone()[0]
    for _ in range(2):
        db.execute(
            "SELECT staging.ensure_round_partitions(%s::smallint), quality.ensure_round_partitions(%s::smallint),"
            " registry.ensure_round_partitions(%s::smallint)",
            (seq, seq, seq),
        )
    parts = db.execute(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname LIKE %s",
        (f"%\\_r{seq}",),
    ).fetchone()[0]
    assert parts == 7  # 5 staging tables (aduan too), rejections, field changes
