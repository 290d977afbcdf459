"""No silent loss from a bad civil-registry extract: a truncated, contradicting or implausible Dukcapil
extract never changes the reference unnoticed, a held one waits for a person's recorded decision, and
no extract closes a registry record by its silence."""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from email import policy

import pytest

from dtsen.errors import DataError
from dtsen.ingest.dukcapil import SnapshotConflict, SnapshotHeld, SnapshotOutcome, ingest_latest_snapshot
from dtsen.ingest.dukcapil_guard import Thresholds
from dtsen.paths import SAMPLE_DIR
from tests.factories import (
    ANGGOTA_HEADER,
    FAMILY_VALUES,
    KELUARGA_HEADER,
    KK1,
    PEOPLE,
    make_dukcapil,
    make_submission,
    person,
    run_steps,
)

HEADER = "nik,no_kk,nama,jenis_kelamin,tanggal_lahir,kode_wilayah,status_hidup,tanggal_meninggal"
STRICT = Thresholds(0.005, 20)  # the defaults


def line(nik: str, village: str = "3273011001", life: str = "HIDUP", name: str = "Nama Orang") -> str:
    born = dt.date(
        1900 + int(nik[10:12]) + (100 if int(nik[10:12]) < 27 else 0), int(nik[8:10]), int(nik[6:8]) % 40
    )
    sex = 2 if int(nik[6:8]) > 40 else 1
    died = "2026-05-01" if life == "MENINGGAL" else ""
    return f"{nik},{KK1},{name},{sex},{born.isoformat()},{village},{life},{died}"


def population(regency: str, count: int, start: int = 1) -> list[str]:
    """`count` well-formed persons of a regency (village <regency>011001), serials from `start`."""
    return [line(f"{regency}01010190{n:04d}", f"{regency}011001") for n in range(start, start + count)]


def body(lines: list[str], newline_at_end: bool = True) -> bytes:
    return ("\n".join([HEADER, *lines]) + ("\n" if newline_at_end else "")).encode()


def write_manifest(folder, data: bytes, day: str, **overrides) -> None:
    manifest = {
        "snapshot_date": day,
        "row_count": data.count(b"\n") - 1 + (not data.endswith(b"\n")),
        "files": {"penduduk.csv": hashlib.sha256(data).hexdigest()},
        "sent_by": "dukcapil.test",
    } | overrides
    (folder / "manifest.json").write_text(json.dumps(manifest))


def load(conn, landing, raw, day: str, thresholds: Thresholds = STRICT):
    with conn.transaction():
        return ingest_latest_snapshot(conn, landing, raw, dt.date.fromisoformat(day), thresholds)


def current_niks(conn) -> int:
    return conn.execute("SELECT count(*) FROM ref.dukcapil WHERE valid_to IS NULL").fetchone()[0]


# -- the manifest -------------------------------------------------------------------------------


def test_an_extract_that_matches_its_manifest_is_applied_and_the_manifest_kept(fresh_db, tmp_path):
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    data = body(population("3273", 30))
    write_manifest(make_dukcapil(landing, "2026-03-28", data).parent, data, "2026-03-28")
    outcome = load(fresh_db, landing, raw, "2026-03-31")
    assert isinstance(outcome, SnapshotOutcome) and outcome.rows_kept == 30
    kept = fresh_db.execute("SELECT manifest FROM ingest.dukcapil_snapshot").fetchone()[0]
    assert kept["row_count"] == 30 and kept["files"]["penduduk.csv"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"row_count": 60}, "it has 30 data rows, its manifest.json says 60"),
        ({"files": {"penduduk.csv": "ab" * 32}}, "does not have the SHA-256 its manifest.json gives"),
        ({"snapshot_date": "2026-03-27"}, "names snapshot 2026-03-27"),
        (
            {"files": {"penduduk.csv": "ab" * 32, "lain.csv": "cd" * 32}},
            "files must list exactly penduduk.csv",
        ),
        ({"row_count": -1}, "row_count"),
    ],
)
def test_an_extract_its_manifest_contradicts_stops_the_round_and_changes_nothing(
    fresh_db, tmp_path, change, said
):
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    data = body(population("3273", 30))
    write_manifest(make_dukcapil(landing, "2026-03-28", data).parent, data, "2026-03-28", **change)
    with pytest.raises(SnapshotConflict, match="2026-03-28 is refused") as refused:
        load(fresh_db, landing, raw, "2026-03-31")
    assert said in str(refused.value)
    assert fresh_db.execute("SELECT count(*) FROM ref.dukcapil").fetchone()[0] == 0
    assert fresh_db.execute("SELECT count(*) FROM ingest.dukcapil_snapshot").fetchone()[0] == 0


def test_a_manifest_that_repeats_a_key_is_refused_even_when_its_last_copy_is_right(fresh_db, tmp_path):
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    data = body(population("3273", 30))
    folder = make_dukcapil(landing, "2026-03-28", data).parent
    right = hashlib.sha256(data).hexdigest()
    (folder / "manifest.json").write_text(
        '{"snapshot_date": "2026-03-28", "row_count": 30, '
        f'"files": {{"penduduk.csv": "{"ab" * 32}", "penduduk.csv": "{right}"}}}}'
    )
    with pytest.raises(SnapshotConflict, match="repeats the key"):
        load(fresh_db, landing, raw, "2026-03-31")


def test_a_truncated_extract_with_a_manifest_is_refused(fresh_db, tmp_path):
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    whole = body(population("3273", 30))
    cut = whole[: whole.index(b"\n", len(whole) // 2) + 1]  # cut at a line end: every line well-formed
    folder = make_dukcapil(landing, "2026-03-28", cut).parent
    write_manifest(folder, whole, "2026-03-28")  # the sender's manifest describes the whole file
    with pytest.raises(SnapshotConflict, match="SHA-256"):
        load(fresh_db, landing, raw, "2026-03-31")


# -- the plausibility guard ---------------------------------------------------------------------


def test_an_extract_removing_more_than_the_share_of_the_reference_is_held_and_nothing_applied(
    fresh_db, tmp_path
):
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    people = population("3273", 400)
    make_dukcapil(landing, "2026-03-28", body(people))
    load(fresh_db, landing, raw, "2026-03-31")
    # cut at a line end, no manifest: every line it has is well-formed, half the people are gone
    make_dukcapil(landing, "2026-06-27", body(people[:200]))
    held = load(fresh_db, landing, raw, "2026-06-30")
    assert isinstance(held, SnapshotHeld)
    found = held.review.found
    assert (
        found["removed"] == 200 and found["reference_niks"] == 400 and "reference_share" in found["reasons"]
    )
    assert "200 of the reference's 400 current NIKs (50.00%, above the 0.50% limit)" in held.review.why
    assert current_niks(fresh_db) == 400
    assert fresh_db.execute("SELECT count(*) FROM ingest.dukcapil_snapshot").fetchone()[0] == 1
    assert fresh_db.execute("SELECT count(*) FROM ref.dukcapil_change").fetchone()[0] == 0
    # the comparison's scratch tables went with the held extract's savepoint
    assert fresh_db.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'scratch_dukcapil'"
    ).fetchone() == (0,)
    # asked again (a rerun of open_round), it is the same review, still waiting
    again = load(fresh_db, landing, raw, "2026-06-30")
    assert isinstance(again, SnapshotHeld) and again.review.review_pk == held.review.review_pk


def test_an_extract_removing_a_regency_is_held_though_the_reference_share_is_small(fresh_db, tmp_path):
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    big, small = population("3273", 6000), population("3204", 30)
    make_dukcapil(landing, "2026-03-28", body(big + small))
    load(fresh_db, landing, raw, "2026-03-31")
    make_dukcapil(landing, "2026-06-27", body(big + small[25:]))  # 25 of 6,030: 0.41% of the reference
    held = load(fresh_db, landing, raw, "2026-06-30")
    assert isinstance(held, SnapshotHeld)
    assert held.review.found["reasons"] == ["regency_share"]
    assert held.review.found["regencies"] == [
        {"kode_kabupaten": "3204", "removed": 25, "current": 30, "share": round(25 / 30, 6)}
    ]
    assert "3204 25 of 30" in held.review.why


def test_a_few_removals_are_applied_without_asking(fresh_db, tmp_path):
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    people = population("3273", 1000)
    make_dukcapil(landing, "2026-03-28", body(people))
    load(fresh_db, landing, raw, "2026-03-31")
    make_dukcapil(landing, "2026-06-27", body(people[:-5]))  # 0.5%: not above the limit
    outcome = load(fresh_db, landing, raw, "2026-06-30")
    assert isinstance(outcome, SnapshotOutcome) and outcome.rows_kept == 995


def test_an_extract_cut_inside_its_last_line_is_held_even_without_removing_a_share(fresh_db, tmp_path):
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    people = population("3273", 50)
    make_dukcapil(landing, "2026-03-28", body(people))
    load(fresh_db, landing, raw, "2026-03-31")
    # the last line cut inside its NIK: it still has all eight fields, only a 12-digit NIK
    cut = people[:-1] + [people[-1][:12] + people[-1][16:]]
    assert cut[-1].count(",") == 7
    make_dukcapil(landing, "2026-06-27", body(cut, newline_at_end=False))
    held = load(fresh_db, landing, raw, "2026-06-30", Thresholds(1.0, 10**6))  # only the cut can stop it
    assert isinstance(held, SnapshotHeld) and held.review.found["reasons"] == ["last_line_cut"]
    assert "looks cut off" in held.review.why
    assert current_niks(fresh_db) == 50


# -- NIKs listed twice --------------------------------------------------------------------------

NIK_A, _, BORN_A, _ = PEOPLE["A"]
NIK_B, _, BORN_B, _ = PEOPLE["B"]
KK2 = "3273010101200002"


def _dukcapil_line(key: str, life: str = "HIDUP", kk: str = KK1) -> str:
    nik, sex, born, _ = PEOPLE[key]
    return (
        f"{nik},{kk},Nama Orang,{sex},{born},3273011001,{life},{'2026-05-02' if life == 'MENINGGAL' else ''}"
    )


def _family_round(landing, round_id: str, members: list[str], family: str) -> None:
    make_submission(
        landing,
        f"3273-{round_id}",
        folder_round=round_id,
        data_files={
            "keluarga.csv": ("\n".join([KELUARGA_HEADER, family]) + "\n").encode(),
            "anggota.csv": ("\n".join([ANGGOTA_HEADER, *members]) + "\n").encode(),
        },
    )


def test_a_nik_listed_twice_is_one_row_when_identical_and_an_extract_defect_when_not(
    fresh_db, tmp_path, monkeypatch
):
    monkeypatch.setenv("DTSEN_RAW_ROOT", str(tmp_path / "raw"))
    monkeypatch.setenv("DTSEN_OUTBOX", str(tmp_path / "outbox"))
    landing, publish = tmp_path / "landing", tmp_path / "publish"
    keys = ("A", "B", "C", "E")
    make_dukcapil(landing, "2026-03-28", body([_dukcapil_line(k) for k in keys]))
    _family_round(
        landing,
        "2026-Q1",
        [person(k, "TAMBAH", KK1, hub) for k, hub in zip(keys, (1, 2, 3, 3), strict=True)],
        f"TAMBAH,{KK1},3273011001,Jl. Satu,2026-01-10,{FAMILY_VALUES},",
    )
    run_steps("2026-Q1", landing_root=landing, publish_root=publish, until="merge")
    # Q2: C is listed twice, first alive then dead (a contradiction); E twice, identically. The region
    # moves both into a new family.
    make_dukcapil(
        landing,
        "2026-06-27",
        body(
            [
                _dukcapil_line("A"),
                _dukcapil_line("B"),
                _dukcapil_line("C"),
                _dukcapil_line("E"),
                _dukcapil_line("C", life="MENINGGAL"),
                _dukcapil_line("E"),
            ]
        ),
    )
    _family_round(
        landing,
        "2026-Q2",
        [
            person("C", "UBAH", KK2, 1),
            person("E", "UBAH", KK2, 3),
        ],
        f"TAMBAH,{KK2},3273011001,Jl. Dua,2026-04-10,{FAMILY_VALUES},",
    )
    done = run_steps("2026-Q2", landing_root=landing, publish_root=publish, until="feedback")
    assert (
        done["open_round"]["dukcapil_conflicting_niks"] == 1 and done["open_round"]["dukcapil_held"] is None
    )
    reasons = dict(
        fresh_db.execute(
            "SELECT key_value, reason_code FROM quality.rejection q JOIN ingest.round r USING (round_seq) "
            "WHERE r.round_id = '2026-Q2' AND q.file_name = 'anggota.csv'"
        ).fetchall()
    )
    # C's row is held for the extract's defect, never told its NIK is unknown; E's row is not refused
    # for its NIK (its family's structure is what rejects it: C was its intended head)
    assert reasons.get(str(int(PEOPLE["C"][0]))) == "NIK_DUKCAPIL_CONFLICT"
    assert reasons.get(str(int(PEOPLE["E"][0]))) not in ("NIK_NOT_IN_DUKCAPIL", "NIK_DUKCAPIL_CONFLICT")
    # C's reference record is kept as it was (alive); E's is current and unchanged
    assert dict(
        fresh_db.execute(
            "SELECT nik::text, status_hidup FROM ref.dukcapil WHERE valid_to IS NULL AND nik IN (%s, %s)",
            (PEOPLE["C"][0], PEOPLE["E"][0]),
        ).fetchall()
    ) == {PEOPLE["C"][0]: "HIDUP", PEOPLE["E"][0]: "HIDUP"}
    ringkasan = json.loads((publish / "feedback" / "2026-Q2" / "3273-2026-Q2" / "ringkasan.json").read_text())
    assert ringkasan["reasons"].get("NIK_DUKCAPIL_CONFLICT") == 1
    assert "NIK_NOT_IN_DUKCAPIL" not in ringkasan["reasons"]
    ditolak = (publish / "feedback" / "2026-Q2" / "3273-2026-Q2" / "ditolak.csv").read_text()
    assert "bukan kesalahan daerah" in ditolak and PEOPLE["C"][0] not in ditolak
    # data ops are told, with the extract's line numbers and never a NIK
    mails = [
        email.message_from_bytes(m.read_bytes(), policy=policy.default)
        for m in (tmp_path / "outbox").glob("*.eml")
    ]
    told = [m.get_content() for m in mails if "listed twice" in m["Subject"]]
    assert len(told) == 1 and "penduduk.csv: 4" in told[0] and not re.search(r"\d{16}", told[0])


# -- through the round: held, decided, never closing a registry record by silence -----------------


def _dtsen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dtsen", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=600,
    )


@pytest.fixture
def sample_after_q1(fresh_db, tmp_path, monkeypatch):
    """The sample's landing zone with its round 2026-Q1 run and published."""
    landing = tmp_path / "landing"
    shutil.copytree(SAMPLE_DIR / "landing", landing)
    for key, value in {
        "DTSEN_LANDING_ROOT": landing,
        "DTSEN_PUBLISH_ROOT": tmp_path / "publish",
        "DTSEN_RAW_ROOT": tmp_path / "raw",
        "DTSEN_OUTBOX": tmp_path / "outbox",
    }.items():
        monkeypatch.setenv(key, str(value))
    run_steps("2026-Q1", landing_root=landing)
    return fresh_db, landing


def test_a_truncated_extract_stops_the_round_until_a_person_keeps_the_reference(sample_after_q1):
    db, landing = sample_after_q1
    extract = landing / "reference" / "dukcapil" / "2026-06-27" / "penduduk.csv"
    whole = extract.read_bytes()
    extract.write_bytes(whole[: whole.index(b"\n", len(whole) // 2) + 1])  # cut in half at a line end
    before = current_niks(db)
    stopped = _dtsen("run-round", "--round", "2026-Q2")
    assert stopped.returncode == 5, stopped.stderr[-2000:]
    assert "the Dukcapil extract of 2026-06-27 is held" in stopped.stderr
    assert "dtsen decide-extract --date 2026-06-27" in stopped.stderr
    db.commit()
    assert current_niks(db) == before  # nothing of it was applied
    assert (
        db.execute(
            "SELECT count(*) FROM ingest.submission s JOIN ingest.round r USING (round_seq) WHERE r.round_id = '2026-Q2'"
        ).fetchone()[0]
        == 0
    )  # nothing was validated against it
    kept = _dtsen(
        "decide-extract",
        "--date",
        "2026-06-27",
        "--keep-reference",
        "--by",
        "ops.ani",
        "--reason",
        "cut in transfer",
    )
    assert kept.returncode == 0, kept.stderr
    again = _dtsen(
        "decide-extract", "--date", "2026-06-27", "--apply", "--by", "ops.budi", "--reason", "late"
    )
    assert again.returncode == 5 and "no Dukcapil extract of 2026-06-27 is waiting" in again.stderr
    resumed = _dtsen("run-round", "--round", "2026-Q2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    db.commit()
    snapshot = db.execute(
        "SELECT s.snapshot_date FROM ingest.round r JOIN ingest.dukcapil_snapshot s "
        "ON s.snapshot_pk = r.dukcapil_snapshot_pk WHERE r.round_id = '2026-Q2'"
    ).fetchone()[0]
    assert snapshot == dt.date(2026, 3, 28)  # the round went on with the reference as it stood
    assert db.execute(
        "SELECT outcome, decided_by, channel, reason FROM ingest.dukcapil_decision ORDER BY decision_pk"
    ).fetchall() == [("KEEP_REFERENCE", "ops.ani", "cli", "cut in transfer")]
    assert current_niks(db) == before


def test_an_applied_extract_closes_no_registry_record_by_its_silence(sample_after_q1):
    db, landing = sample_after_q1
    extract = landing / "reference" / "dukcapil" / "2026-06-27" / "penduduk.csv"
    lines = extract.read_bytes().decode().splitlines()
    extract.write_text("\n".join(lines[: len(lines) - 300]) + "\n")  # 300 NIKs gone, no manifest
    gone = {int(x.split(",")[0]) for x in lines[len(lines) - 300 :]}
    open_before = db.execute(
        "SELECT count(*) FROM registry.person WHERE is_open AND nik = ANY(%s)", (list(gone),)
    ).fetchone()[0]
    assert open_before > 0
    with pytest.raises(DataError, match="is held"):
        run_steps("2026-Q2", landing_root=landing)
    assert (
        _dtsen(
            "decide-extract", "--date", "2026-06-27", "--apply", "--by", "ops.ani", "--reason", "checked"
        ).returncode
        == 0
    )
    run_steps("2026-Q2", landing_root=landing)
    db.commit()
    review = db.execute(
        "SELECT s.review_pk IS NOT NULL, v.status FROM ingest.dukcapil_snapshot s "
        "JOIN ingest.dukcapil_review v ON v.review_pk = s.review_pk WHERE s.snapshot_date = '2026-06-27'"
    ).fetchone()
    assert review == (True, "APPLY")  # applied, and under which decision is kept with it
    assert (
        db.execute(
            "SELECT count(*) FROM ref.dukcapil WHERE valid_to IS NULL AND nik = ANY(%s)", (list(gone),)
        ).fetchone()[0]
        == 0
    )
    # the persons stay in the registry: absence from an extract is not a death nor a removal (only a
    # region's own row may close one of them)
    assert (
        db.execute(
            "SELECT count(*) FROM registry.field_change c JOIN ingest.round r USING (round_seq) "
            "WHERE r.round_id = '2026-Q2' AND c.entity = 'P' AND c.field = 'is_open' AND c.entity_key = ANY(%s) "
            "AND c.submission_pk IS NULL",
            (list(gone),),
        ).fetchone()[0]
        == 0
    )


def test_an_answer_after_the_extract_was_decided_changes_nothing_and_two_at_once_settle_it_once(
    fresh_db, tmp_path, monkeypatch
):
    import threading

    import psycopg

    from dtsen.ingest.dukcapil_review import decide
    from dtsen.round import RoundContext, record_extract_decision
    from dtsen.warehouse import engine

    landing, raw = tmp_path / "landing", tmp_path / "raw"
    people = population("3273", 100)
    make_dukcapil(landing, "2026-03-28", body(people))
    load(fresh_db, landing, raw, "2026-03-31")
    make_dukcapil(landing, "2026-06-27", body(people[:50]))
    held = load(fresh_db, landing, raw, "2026-06-30")
    fresh_db.execute("INSERT INTO ingest.round (round_id) VALUES ('2026-Q2')")
    fresh_db.execute(
        "UPDATE ingest.round SET dukcapil_review_pk = %s WHERE round_id = '2026-Q2'", (held.review.review_pk,)
    )
    fresh_db.commit()
    url = engine.libpq_conninfo(engine.database_url())
    settled: list = []
    barrier = threading.Barrier(2)

    def answer(outcome: str, who: str) -> None:
        with psycopg.connect(url) as conn, conn.transaction():
            barrier.wait()
            settled.append(decide(conn, held.review.review_pk, outcome, who, "cli", "why")[1])

    threads = [
        threading.Thread(target=answer, args=("APPLY", "ops.ani")),
        threading.Thread(target=answer, args=("KEEP_REFERENCE", "ops.budi")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(settled) == [False, True]
    # the Airflow task's own answer comes later, or its timeout: a no-op, the round goes on
    monkeypatch.setenv("DTSEN_APPROVERS", "ops")
    late = record_extract_decision(
        RoundContext.create("2026-Q2", dag_run_id="manual__late"),
        decision=None,
        decided_by=None,
        reason=None,
        timed_out=True,
    )
    assert late["decision"] in ("APPLY", "KEEP_REFERENCE")
    assert fresh_db.execute("SELECT count(*) FROM ingest.dukcapil_decision").fetchone()[0] == 1
