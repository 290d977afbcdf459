"""Merging validated rounds into the registry (real PostgreSQL)."""

from __future__ import annotations

from dtsen.merge import check_invariants, merge_round
from tests.factories import (
    FAMILY_VALUES,
    KK1,
    KK2,
    PEOPLE,
    build_round,
    merge,
    person,
    stage,
)


def _run(db, tmp_path, round_id, anggota, keluarga, sub="r"):
    landing = build_round(tmp_path / sub, round_id, anggota, keluarga)
    ingested = stage(round_id, landing)
    return ingested, merge(db, ingested.round_seq)


def _rejections(db, round_seq: int) -> list[tuple[str, int, str]]:
    return db.execute(
        "SELECT file_name, line_no, reason_code FROM quality.rejection WHERE round_seq = %s ORDER BY 1, 2, 3",
        (round_seq,),
    ).fetchall()


def _members(db, kk: str) -> dict[str, int]:
    return {
        str(nik): hub
        for nik, hub in db.execute(
            "SELECT nik, hubungan_keluarga FROM registry.membership WHERE no_kk = %s AND valid_to_round IS NULL",
            (int(kk),),
        )
    }


def test_tambah_round_creates_families_members_and_skips_rejected_rows(fresh_db, tmp_path, monkeypatch):
    db, round_id = fresh_db, "2026-Q1"
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    keluarga = [f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"]
    anggota = [person("A", "TAMBAH", KK1, 1), person("C", "TAMBAH", KK1, 3), person("D", "TAMBAH", KK1, 3)]
    ingested, summary = _run(db, tmp_path, round_id, anggota, keluarga)
    assert _members(db, KK1) == {PEOPLE["A"][0]: 1, PEOPLE["C"][0]: 3}  # D is deceased: rejected
    assert summary.changes["families added"] == 1 and summary.changes["persons added"] == 2
    assert check_invariants(db, None, ingested.opened["dukcapil_snapshot_pk"]) == {}
    again = merge_round(db, ingested.round_seq)
    assert again.already_merged


def two_rounds(db, tmp_path, monkeypatch):
    """Round 1 merged and round 2 validated (not merged) in the given fresh warehouse."""
    from dtsen.ingest.register import round_reference_date
    from tests.factories import ANGGOTA_HEADER, KELUARGA_HEADER, make_dukcapil, make_submission

    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    keluarga = [
        f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},",
        f"TAMBAH,{KK2},3273011001,Jl. Dua,2026-01-10,{FAMILY_VALUES},",
    ]
    anggota = [
        person("A", "TAMBAH", KK1, 1),
        person("C", "TAMBAH", KK1, 3),
        person("J", "TAMBAH", KK1, 3),
        person("B", "TAMBAH", KK2, 1),
        person("F", "TAMBAH", KK2, 2),
    ]
    landing = build_round(tmp_path, "2026-Q1", anggota, keluarga)
    first = stage("2026-Q1", landing)
    merge(db, first.round_seq)
    assert _members(db, KK2) == {PEOPLE["B"][0]: 1, PEOPLE["F"][0]: 2}

    # Round 2: J dies (only Dukcapil knows), B's name is corrected by Dukcapil, C moves to KK2,
    # F moves away, the region changes KK1's floor but BPS measured it differently.
    rows = ["nik,no_kk,nama,jenis_kelamin,tanggal_lahir,kode_wilayah,status_hidup,tanggal_meninggal"]
    for key, (nik, sex, born, life) in PEOPLE.items():
        nama = "Budi Santoso" if key == "B" else "Nama Orang"
        dead = key in ("D", "J")
        rows.append(
            f"{nik},{KK1},{nama},{sex},{born},3273011001,{'MENINGGAL' if dead else life},"
            f"{'2026-05-01' if dead else ''}"
        )
    make_dukcapil(landing, round_reference_date("2026-Q2").isoformat(), ("\n".join(rows) + "\n").encode())
    empty_attrs = "," * 16
    make_submission(
        landing,
        "3273-2026Q2",
        folder_round="2026-Q2",
        data_files={
            "keluarga.csv": (
                f"{KELUARGA_HEADER}\nUBAH,{KK1},3273011001,,2026-05-02,,,8{empty_attrs[2:]},\n"
                f"UBAH,{KK2},3273011001,,2026-05-02{',' * 18}\n"
            ).encode(),
            "anggota.csv": (
                f"{ANGGOTA_HEADER}\nUBAH,{PEOPLE['C'][0]},{KK2},,,,,,,,,,,\n"
                f"HAPUS,{PEOPLE['F'][0]},{KK2},,,,,,,,,,,PINDAH\n"
            ).encode(),
        },
    )
    make_submission(
        landing,
        "bps-2026Q2",
        folder="bps",
        folder_round="2026-Q2",
        data_files={
            "keluarga.csv": f"no_kk,kode_wilayah,tanggal_survei,jenis_lantai,pengeluaran_per_kapita\n"
            f"{KK1},3273011001,2026-05-20,2,1250000\n".encode(),
        },
    )
    second = stage("2026-Q2", landing)
    assert _rejections(db, second.round_seq) == []
    return first, second


def test_second_round_moves_removes_and_takes_dukcapil_and_bps_as_authority(fresh_db, tmp_path, monkeypatch):
    db = fresh_db
    first, second = two_rounds(db, tmp_path, monkeypatch)
    assert _rejections(db, second.round_seq) == []
    summary = merge(db, second.round_seq)

    assert _members(db, KK1) == {PEOPLE["A"][0]: 1}
    assert _members(db, KK2) == {PEOPLE["B"][0]: 1, PEOPLE["C"][0]: 3}
    people = {
        r[0]: r[1:] for r in db.execute("SELECT nik::text, is_open, closed_reason, nama FROM registry.person")
    }
    assert people[PEOPLE["J"][0]] == (False, "MENINGGAL", "Nama Orang")
    assert people[PEOPLE["F"][0]][:2] == (False, "PINDAH")
    assert people[PEOPLE["B"][0]] == (True, None, "Budi Santoso")
    lantai, pengeluaran = db.execute(
        "SELECT jenis_lantai, pengeluaran_per_kapita FROM registry.family WHERE no_kk = %s", (int(KK1),)
    ).fetchone()
    assert (lantai, pengeluaran) == (2, 1250000)
    lost = db.execute(
        "SELECT file_name, line_no FROM quality.rejection WHERE round_seq = %s "
        "AND reason_code = 'CONFLICT_LOST'",
        (second.round_seq,),
    ).fetchall()
    assert lost == [("keluarga.csv", 2)]  # the pemda floor change BPS overrode entirely
    provenance = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT field, old_value, new_value, source FROM registry.field_change WHERE round_seq = %s "
            "AND entity_key = %s",
            (second.round_seq, int(PEOPLE["B"][0])),
        )
    }
    assert provenance == {"nama": ("Nama Orang", "Budi Santoso", "dukcapil")}
    assert summary.changes["persons deceased"] == 1
    assert check_invariants(db, None, second.opened["dukcapil_snapshot_pk"]) == {}

    # History: the registry as of round 1 is exactly what round 1 left.
    as_of_1 = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT nik::text, no_kk::text, hubungan_keluarga, nama FROM registry.registry_as_of(%s::smallint)",
            (first.round_seq,),
        )
    }
    assert as_of_1 == {
        PEOPLE["A"][0]: (KK1, 1, "Nama Orang"),
        PEOPLE["C"][0]: (KK1, 3, "Nama Orang"),
        PEOPLE["J"][0]: (KK1, 3, "Nama Orang"),
        PEOPLE["B"][0]: (KK2, 1, "Nama Orang"),
        PEOPLE["F"][0]: (KK2, 2, "Nama Orang"),
    }
    spending_then = db.execute(
        "SELECT pengeluaran_per_kapita FROM registry.family_as_of(%s::smallint) WHERE no_kk = %s",
        (first.round_seq, int(KK1)),
    ).fetchone()[0]
    assert spending_then is None  # measured by BPS only in round 2
    # Provenance: who set each value.
    person_prov = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT field, value, round_seq, source FROM registry.person_provenance(%s)",
            (int(PEOPLE["B"][0]),),
        )
    }
    assert person_prov["nama"] == ("Budi Santoso", second.round_seq, "dukcapil")
    assert person_prov["pendidikan_tertinggi"] == ("3", first.round_seq, "pemda")
    family_prov = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT field, value, round_seq, source FROM registry.family_provenance(%s)", (int(KK1),)
        )
    }
    assert family_prov["pengeluaran_per_kapita"] == ("1250000", second.round_seq, "bps")


REGISTRY_FINGERPRINT = """
SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM registry.person t),
       (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM registry.family t),
       (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM registry.membership t),
       (SELECT count(*) FROM registry.field_change),
       (SELECT count(*) FROM quality.rejection WHERE reason_code = 'CONFLICT_LOST'),
       (SELECT string_agg(status, ',' ORDER BY round_seq) FROM ingest.round)
"""

CHILD_MERGE = """
import sys
from dtsen.merge import merge_round
from dtsen.warehouse import engine
with engine.connect() as conn:
    merge_round(conn, int(sys.argv[1]))
"""


def test_a_merge_killed_mid_flight_leaves_the_registry_untouched_and_reruns_cleanly(
    fresh_db, tmp_path, monkeypatch
):
    import os
    import signal
    import subprocess
    import sys
    import time

    import psycopg

    from dtsen.warehouse import engine

    db = fresh_db
    first, second = two_rounds(db, tmp_path, monkeypatch)
    db.commit()
    before = db.execute(REGISTRY_FINGERPRINT).fetchone()
    db.commit()  # release our own ACCESS SHARE locks before taking the exclusive one

    # Hold a lock the merge needs half-way (after it has written CONFLICT_LOST rows and temp tables),
    # start a real merge in another process, wait until it is blocked there, and SIGKILL it.
    blocker = psycopg.connect(engine.libpq_conninfo(os.environ["DTSEN_DATABASE_URL"]))
    blocker.execute("LOCK TABLE registry.field_change IN ACCESS EXCLUSIVE MODE")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_MERGE, str(second.round_seq)], env=os.environ.copy()
    )
    deadline = time.monotonic() + 60
    waiting = False
    while time.monotonic() < deadline and not waiting:
        waiting = db.execute(
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'dtsen' AND wait_event_type = 'Lock'"
        ).fetchone()[0]
        db.commit()
        time.sleep(0.1)
    assert waiting, "the merge never reached the blocked step"
    rejections_midflight = db.execute(
        "SELECT count(*) FROM quality.rejection WHERE reason_code = 'CONFLICT_LOST'"
    ).fetchone()[0]
    db.commit()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    blocker.rollback()
    blocker.close()
    # the orphaned backend finishes its statement, finds no client, and rolls back
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busy = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'dtsen' AND pid <> pg_backend_pid()"
        ).fetchone()[0]
        db.commit()
        if busy == 0:
            break
        time.sleep(0.1)

    assert rejections_midflight == 0  # uncommitted work was never visible
    assert db.execute(REGISTRY_FINGERPRINT).fetchone() == before
    db.commit()

    # Rerun: merges fully; a third run changes nothing.
    summary = merge(db, second.round_seq)
    assert not summary.already_merged and summary.conflict_lost == 1
    after = db.execute(REGISTRY_FINGERPRINT).fetchone()
    assert merge_round(db, second.round_seq).already_merged
    db.commit()
    assert db.execute(REGISTRY_FINGERPRINT).fetchone() == after
    assert _members(db, KK2) == {PEOPLE["B"][0]: 1, PEOPLE["C"][0]: 3}


def test_round_scoped_invariants_catch_each_kind_of_violation(fresh_db, tmp_path, monkeypatch):
    db, round_id = fresh_db, "2026-Q1"
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    keluarga = [f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"]
    anggota = [person("A", "TAMBAH", KK1, 1), person("C", "TAMBAH", KK1, 3)]
    ingested, _ = _run(db, tmp_path, round_id, anggota, keluarga)
    db.commit()
    snapshot, head, child = ingested.opened["dukcapil_snapshot_pk"], int(PEOPLE["A"][0]), int(PEOPLE["C"][0])
    dead = int(PEOPLE["D"][0])  # deceased per the Dukcapil snapshot
    with db.transaction(force_rollback=True):
        # what a merge would leave behind if a step were wrong: a headless family, a member of a
        # closed family, an open membership of a closed person, an open deceased person
        db.execute(
            "CREATE UNLOGGED TABLE scratch_merge.touched_family AS SELECT %s::bigint AS no_kk", (int(KK1),)
        )
        db.execute(
            "CREATE UNLOGGED TABLE scratch_merge.touched_person AS SELECT unnest(%s::bigint[]) AS nik",
            ([head, child, dead],),
        )
        db.execute(
            "CREATE UNLOGGED TABLE scratch_merge.dk_changed AS SELECT nik, status_hidup FROM ref.dukcapil_as_of(%s)",
            (snapshot,),
        )
        assert check_invariants(db, ingested.round_seq, snapshot) == {}
        db.execute("UPDATE registry.membership SET hubungan_keluarga = 2 WHERE nik = %s", (head,))
        db.execute("UPDATE registry.person SET is_open = false WHERE nik = %s", (child,))
        db.execute(
            "INSERT INTO registry.person (nik, nama, jenis_kelamin, tanggal_lahir, created_round, updated_round) "
            "VALUES (%s, 'x', 1, '1950-01-01', 1, 1)",
            (dead,),
        )
        found = check_invariants(db, ingested.round_seq, snapshot)
        assert set(found) == {
            "open_family_without_exactly_one_head",
            "open_membership_of_closed_person",
            "open_person_deceased_per_dukcapil",
        }
        db.execute("UPDATE registry.family SET is_open = false WHERE no_kk = %s", (int(KK1),))
        assert "open_membership_of_closed_family" in check_invariants(db, ingested.round_seq, snapshot)


def test_family_structure_cascades_to_the_family_a_rejected_member_was_founding(
    fresh_db, tmp_path, monkeypatch
):
    """The head of KK1 leaves without a successor (FAMILY_STRUCTURE), which also rejects C's move out
    of KK1; C was to head the new KK2, so KK2 and the spouse joining it must be rejected too, or
    KK2 would be merged headless (found by the 1M-person bench)."""
    from tests.factories import ANGGOTA_HEADER, KELUARGA_HEADER, make_submission

    db = fresh_db
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    keluarga = [f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},"]
    anggota = [person("A", "TAMBAH", KK1, 1), person("C", "TAMBAH", KK1, 3), person("E", "TAMBAH", KK1, 3)]
    landing = build_round(tmp_path, "2026-Q1", anggota, keluarga)
    first = stage("2026-Q1", landing)
    merge(db, first.round_seq)
    make_submission(
        landing,
        "3273-2026Q2",
        folder_round="2026-Q2",
        data_files={
            "keluarga.csv": f"{KELUARGA_HEADER}\nTAMBAH,{KK2},3273011001,Jl. Dua,2026-05-02,{FAMILY_VALUES},\n".encode(),
            "anggota.csv": (
                f"{ANGGOTA_HEADER}\nHAPUS,{PEOPLE['A'][0]},{KK1},,,,,,,,,,,PINDAH\n"
                f"UBAH,{PEOPLE['E'][0]},{KK2},,,,1,,,,,,,\n"
                f"{person('B', 'TAMBAH', KK2, 2)}\n"
            ).encode(),
        },
    )
    second = stage("2026-Q2", landing)
    assert _rejections(db, second.round_seq) == [
        ("anggota.csv", 2, "FAMILY_STRUCTURE"),
        ("anggota.csv", 3, "FAMILY_STRUCTURE"),
        ("anggota.csv", 4, "FAMILY_STRUCTURE"),
        ("keluarga.csv", 2, "FAMILY_STRUCTURE"),
    ]
    merge(db, second.round_seq)  # no headless family: the invariants hold
    assert _members(db, KK1) == {PEOPLE["A"][0]: 1, PEOPLE["C"][0]: 3, PEOPLE["E"][0]: 3}
    assert _members(db, KK2) == {}
