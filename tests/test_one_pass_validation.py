"""A staged file is read once to validate it, and the one pass judges exactly as the suite as written."""

from __future__ import annotations

import json

from psycopg import sql

from dtsen.contract import FileKind
from dtsen.validate.round import validate_file
from dtsen.validate.rules import rules_for
from dtsen.validate.run import Batch, run_authored_suite
from tests.factories import FAMILY_VALUES, KK1, KK2, PEOPLE, build_round, make_dukcapil, member, person, stage


def staging_rows_read(db, kind: FileKind) -> int:
    """Rows this transaction has read from the file kind's staging partitions, by any kind of scan."""
    return db.execute(
        "SELECT coalesce(sum(seq_tup_read), 0) + coalesce(sum(idx_tup_fetch), 0) FROM pg_stat_xact_user_tables "
        "WHERE schemaname = 'staging' AND relname LIKE %s",
        (kind.value + "%",),
    ).fetchone()[0]


def test_validating_a_file_reads_its_staged_rows_once_whatever_the_number_of_rules(
    db, tmp_path, monkeypatch, round_id
):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    keluarga = [f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"]
    anggota = [person(key, "TAMBAH", KK1, 1 if key == "A" else 3) for key in ("A", "B", "C", "E", "F")]
    anggota += [
        member("TAMBAH", "x", KK1, 3, "", 9),
        member("HAPUS", PEOPLE["H"][0], KK2, 1, "1990-13-01", 3),
    ]
    ingested = stage(round_id, build_round(tmp_path, round_id, anggota, keluarga))
    pk = ingested.submissions[0]["submission_pk"]
    kind = FileKind.PEMDA_ANGGOTA
    assert len(rules_for(kind)) > 20
    before_rejections = db.execute(
        "SELECT count(*) FROM quality.rejection WHERE submission_pk = %s AND file_name = 'anggota.csv'", (pk,)
    ).fetchone()[0]
    before = staging_rows_read(db, kind)
    suite, _ = validate_file(db, Batch(kind, round_seq=ingested.round_seq, submission_pk=pk), "anggota.csv")
    assert staging_rows_read(db, kind) - before == len(anggota)
    assert not suite.success and suite.evaluated == len(rules_for(kind))
    # rerunning it (a retried task) rejects nothing twice
    assert (
        db.execute(
            "SELECT count(*) FROM quality.rejection WHERE submission_pk = %s AND file_name = 'anggota.csv'",
            (pk,),
        ).fetchone()[0]
        == before_rejections
    )


def test_the_dukcapil_snapshot_is_judged_exactly_as_its_suite_as_written(db, tmp_path, monkeypatch, round_id):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    landing = build_round(tmp_path, round_id, [person("A", "TAMBAH", KK1, 1)], [])
    csv_path = next((landing / "reference" / "dukcapil").glob("*/penduduk.csv"))
    defects = [
        "12345,3273010101200001,Nama,1,1990-01-01,3273011001,HIDUP,",  # NIK_FORMAT
        "3273010808080010,3273010101200001,Nama,3,2008-08-08,3273011001,HIDUP,",  # jenis_kelamin
        "3273010909090011,3273010101200001,Nama,1,2009-09-09,9999999999,MATI,",  # wilayah, status_hidup
        "3273011010100012,3273010101200001,Nama,1,2010-10-32,3273011001,HIDUP,",  # tanggal_lahir
    ]
    body = csv_path.read_bytes() + ("\n".join(defects) + "\n").encode()
    csv_path.unlink()
    csv_path.parent.rmdir()
    make_dukcapil(landing, csv_path.parent.name, body)
    ingested = stage(round_id, landing)
    snapshot_pk = ingested.opened["dukcapil_snapshot_pk"]
    stored = db.execute(
        "SELECT success, failed, result FROM quality.snapshot_suite_result WHERE snapshot_pk = %s",
        (snapshot_pk,),
    ).fetchone()
    written = run_authored_suite(db, Batch(FileKind.DUKCAPIL_PENDUDUK, snapshot_pk=snapshot_pk))
    result = stored[2] if isinstance(stored[2], list) else json.loads(stored[2])
    assert {r["rule_id"]: r["failed"] for r in result} == {r.rule_id: r.failed for r in written.rules}
    assert (stored[0], stored[1]) == (written.success, written.failed)
    assert sum(1 for r in written.rules if r.failed) >= 5  # the defects above really fail rules


def test_no_rule_of_any_file_keeps_the_one_pass_in_one_process(db):
    """Every rule of every file kind is parallel-safe: a correlated subquery (a rule looking a value up
    per row) would keep the pass over a 289M-row extract in one process. PostgreSQL's debug setting
    puts a plan under a Gather exactly when every part of it may run in a worker."""
    db.execute(
        "SELECT set_config(name, 'on', true) FROM pg_settings "
        "WHERE name IN ('force_parallel_mode', 'debug_parallel_query')"  # PostgreSQL 15, 16+
    )
    for kind in FileKind:
        # the batch's cut-off and regency as the one pass gets them: one value each, known up front
        rows = f"SELECT s.*, %(cutoff)s::date AS _cutoff, %(regency)s::text AS _regency FROM staging.{kind.value} s"
        for rule in rules_for(kind):
            predicate = sql.SQL("({}) IS TRUE").format(rule.predicate).as_string(db).replace("%", "%%")
            plan = db.execute(
                f"EXPLAIN SELECT line_no FROM ({rows}) b WHERE {predicate}",
                {"cutoff": "2026-06-30", "regency": "3273"},
            ).fetchone()[0]
            assert plan.startswith("Gather"), (kind, rule.rule_id, plan)
