"""Rank, eligibility, audit and publication of DTSEN versions on the sample rounds (issue 5).

The sample rounds 2026-Q1 and 2026-Q2 are validated, merged and published in a warehouse of their
own (versions 1 and 2); the published files are then checked against the contract, the invariants
and the program rules recomputed independently from the files, and the ranking against the
generator's hidden welfare. Round 2026-Q3 is used last, for the audit blocking a drifted candidate.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dtsen.config import DEFAULT_PROGRAMS as DEFAULT_PROGRAMS_PATH
from dtsen.config import DEFAULT_RANKING_MODEL as DEFAULT_MODEL_PATH
from dtsen.paths import SAMPLE_DIR
from dtsen.programs import ProgramConfigError, load_programs, parse_programs
from dtsen.publish.audit import AuditError, approve_version
from dtsen.publish.candidate import build_candidate, eligibility_context_sql
from dtsen.publish.explain import explain
from dtsen.publish.parquet import copy_to_parquet
from dtsen.publish.version import PublishError, publish_version, verify_version_dir
from dtsen.rank.model import ModelError, load_model, parse_model
from dtsen_dev.evaluate import score_ranking
from tests.factories import run_steps

KELUARGA_COLUMNS = {"no_kk", "kode_wilayah", "desil", "skor_kesejahteraan", "jumlah_anggota", "jenis_lantai"}
ANGGOTA_COLUMNS = {
    "nik",
    "no_kk",
    "nama",
    "jenis_kelamin",
    "tanggal_lahir",
    "hubungan_keluarga",
    "status_pekerjaan",
}
PROGRAM_COLUMNS = ["nik", "no_kk", "kode_wilayah", "desil"]
PERUBAHAN_COLUMNS = ["nik", "change", "desil_before", "desil_after"]
CHANGES = {"ADDED", "REMOVED", "DESIL_CHANGED", "MOVED_FAMILY", "ATTRIBUTES_CHANGED"}


@pytest.fixture(scope="module")
def published(module_warehouse, tmp_path_factory):
    """Sample rounds 2026-Q1 and 2026-Q2 merged and published (versions 1 and 2)."""
    publish_root = tmp_path_factory.mktemp("publish")
    results = {
        round_id: run_steps(round_id, landing_root=SAMPLE_DIR / "landing", publish_root=publish_root)
        for round_id in ("2026-Q1", "2026-Q2")
    }
    return module_warehouse, publish_root, results


def _manifest(root: Path, version: int) -> dict:
    return json.loads((root / "versions" / str(version) / "manifest.json").read_text())


def _read(version_dir: Path, relative: str) -> pd.DataFrame:
    return pq.read_table(version_dir / relative).to_pandas()


def test_each_merged_round_is_published_as_the_next_version(published):
    _, root, results = published
    assert [r["publish"]["version"] for r in results.values()] == [1, 2]
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["1", "2"]  # nothing half-written left
    assert _manifest(root, 2)["previous_version"] == 1
    conn = published[0]
    per_version = dict(
        conn.execute("SELECT version, count(*) FROM publish.recipient_pbi_jk GROUP BY 1").fetchall()
    )
    assert per_version == {v: _manifest(root, v)["programs"]["pbi_jk"]["recipients"] for v in (1, 2)}
    conn.rollback()


@pytest.mark.parametrize("version", [1, 2])
def test_published_files_match_the_contract_and_the_manifest_checksums(published, version):
    _, root, _ = published
    folder = root / "versions" / str(version)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {
        "version",
        "round_id",
        "published_at",
        "previous_version",
        "ranking_model",
        "counts",
        "programs",
        "files",
    } <= set(manifest)
    assert manifest["version"] == version and manifest["ranking_model"]["sha256"] == load_model().sha256
    for relative, digest in manifest["files"].items():
        assert hashlib.sha256((folder / relative).read_bytes()).hexdigest() == digest, relative
    programs = {p.id for p in load_programs().programs}
    assert set(manifest["files"]) == {"keluarga.parquet", "anggota.parquet", "perubahan.parquet"} | {
        f"programs/{p}.parquet" for p in programs
    }
    keluarga, anggota = _read(folder, "keluarga.parquet"), _read(folder, "anggota.parquet")
    assert KELUARGA_COLUMNS <= set(keluarga.columns) and ANGGOTA_COLUMNS <= set(anggota.columns)
    assert (len(anggota), len(keluarga)) == (
        manifest["counts"]["individuals"],
        manifest["counts"]["families"],
    )
    assert anggota["nik"].str.fullmatch(r"\d{16}").all() and keluarga["no_kk"].str.fullmatch(r"\d{16}").all()
    assert keluarga["desil"].between(1, 10).all()
    for program in programs:
        recipients = _read(folder, f"programs/{program}.parquet")
        assert list(recipients.columns[:4]) == PROGRAM_COLUMNS
        assert len(recipients) == manifest["programs"][program]["recipients"]
    changes = _read(folder, "perubahan.parquet")
    assert list(changes.columns) == PERUBAHAN_COLUMNS and set(changes["change"]) <= CHANGES
    if version == 1:
        assert set(changes["change"]) == {"ADDED"} and len(changes) == len(anggota)


@pytest.mark.parametrize("version", [1, 2])
def test_published_versions_hold_the_registry_invariants(published, version):
    _, root, _ = published
    folder = root / "versions" / str(version)
    keluarga, anggota = _read(folder, "keluarga.parquet"), _read(folder, "anggota.parquet")
    assert anggota["nik"].is_unique and keluarga["no_kk"].is_unique
    heads = anggota[anggota["hubungan_keluarga"] == 1].groupby("no_kk").size()
    assert heads.reindex(keluarga["no_kk"]).fillna(0).eq(1).all()
    assert anggota["no_kk"].isin(keluarga["no_kk"]).all()
    snapshot = {1: "2026-03-28", 2: "2026-06-27"}[version]  # the Dukcapil extract of the version's round
    with open(
        SAMPLE_DIR / "landing" / "reference" / "dukcapil" / snapshot / "penduduk.csv", encoding="utf-8"
    ) as fh:
        deceased = {r["nik"] for r in csv.DictReader(fh) if r["status_hidup"] == "MENINGGAL"}
    assert deceased and not set(anggota["nik"]) & deceased
    shares = keluarga.groupby("desil")["jumlah_anggota"].sum() / keluarga["jumlah_anggota"].sum()
    assert shares.between(0.09, 0.11).all() and len(shares) == 10


def test_program_recipients_follow_the_configured_rules(published):
    """Recomputed from the published files in pandas, independently of the SQL predicates."""
    _, root, _ = published
    folder = root / "versions" / "2"
    keluarga, anggota = _read(folder, "keluarga.parquet"), _read(folder, "anggota.parquet")
    people = anggota.merge(keluarga[["no_kk", "desil", "groundcheck_hasil", "kode_wilayah"]], on="no_kk")
    reference = pd.Timestamp("2026-06-30")
    born = pd.to_datetime(people["tanggal_lahir"])
    people["umur"] = (
        reference.year
        - born.dt.year
        - (
            (born.dt.month > reference.month)
            | ((born.dt.month == reference.month) & (born.dt.day > reference.day))
        )
    )
    excluded_work = people.groupby("no_kk")["status_pekerjaan"].transform(lambda s: s.isin([5, 6]).any())
    gc_ok = ~people["groundcheck_hasil"].isin(["TIDAK_DITEMUKAN", "PINDAH", "MENINGGAL"])
    # PKH's components: a child 0-6, a child 6-21 in school, a member 60+, a severe disability
    components = {
        "anak_usia_dini": people["umur"].between(0, 6),
        "anak_sekolah": people["umur"].between(6, 21) & (people["status_sekolah"] == 1),
        "lansia": people["umur"] >= 60,
        "disabilitas_berat": people["disabilitas"] == 1,
    }
    has = {name: met.groupby(people["no_kk"]).transform("any") for name, met in components.items()}
    people["komponen"] = [
        ";".join(name for name in components if has[name].iloc[i]) for i in range(len(people))
    ]
    family = (people["desil"] <= 4) & ~excluded_work & gc_ok & (people["hubungan_keluarga"] == 1)
    expected = {
        "pbi_jk": people[(people["desil"] <= 5) & ~excluded_work & gc_ok],
        "sekolah_rakyat": people[(people["desil"] <= 2) & people["umur"].between(6, 18) & gc_ok],
        "bpnt": people[family],
        "pkh": people[family & (people["komponen"] != "")],
    }
    for program, rows in expected.items():
        recipients = _read(folder, f"programs/{program}.parquet")
        assert len(rows) > 0
        assert set(recipients["nik"]) == set(rows["nik"]), program
    # PKH differs from BPNT exactly by the component rule, and lists each family's components
    pkh, bpnt = _read(folder, "programs/pkh.parquet"), _read(folder, "programs/bpnt.parquet")
    without = set(bpnt["nik"]) - set(pkh["nik"])
    assert without and set(pkh["nik"]) < set(bpnt["nik"])
    assert set(people.loc[people["nik"].isin(without), "komponen"]) == {""}
    listed = pkh.merge(people[["nik", "komponen"]], on="nik", suffixes=("", "_expected"))
    assert (listed["komponen"] == listed["komponen_expected"]).all()
    assert "komponen" not in bpnt.columns
    sekolah = _read(folder, "programs/sekolah_rakyat.parquet").merge(
        anggota[["nik", "status_sekolah"]], on="nik"
    )
    assert (sekolah["prioritas"] == sekolah["status_sekolah"].isin([0, 2])).all()


def test_pkh_excludes_a_poor_family_without_a_component_and_includes_one_with_an_elder(published):
    conn, root, _ = published
    folder = root / "versions" / "2"
    pkh, bpnt = _read(folder, "programs/pkh.parquet"), _read(folder, "programs/bpnt.parquet")
    families = conn.execute(
        """SELECT k.desil, a.no_kk::text,
                  bool_and(extract(year FROM age(v.reference_date, a.tanggal_lahir)) BETWEEN 22 AND 59
                           AND a.disabilitas = 0) AS no_component,
                  bool_or(extract(year FROM age(v.reference_date, a.tanggal_lahir)) >= 60) AS elder,
                  bool_and(extract(year FROM age(v.reference_date, a.tanggal_lahir)) >= 22
                           AND a.disabilitas = 0) AS only_elders
           FROM publish.anggota a JOIN publish.version v ON v.version = a.version
           JOIN publish.keluarga k ON k.version = a.version AND k.no_kk = a.no_kk
           WHERE a.version = 2 GROUP BY 1, 2"""
    ).fetchall()
    conn.rollback()
    bpnt_families = set(bpnt["no_kk"])
    without = [kk for desil, kk, none, _, _ in families if desil == 2 and none and kk in bpnt_families]
    elders = [kk for desil, kk, _, elder, only in families if elder and only and kk in bpnt_families]
    assert without and elders
    assert not set(without) & set(pkh["no_kk"])  # BPNT takes them, PKH does not
    listed = pkh.set_index("no_kk")["komponen"]
    assert all(listed[kk] == "lansia" for kk in elders)


def test_ranking_recovers_the_hidden_welfare_of_the_sample(published):
    """The default model was fitted on another generated world (seed 11), not on the sample."""
    conn, _, _ = published
    for version, round_id in ((1, "2026-Q1"), (2, "2026-Q2")):
        score = score_ranking(conn, version, SAMPLE_DIR / "truth" / round_id)
        assert score.spearman > 0.9
        assert score.inclusion_error < 0.15 and score.exclusion_error < 0.15


def test_publishing_a_published_round_again_changes_nothing(published):
    conn, root, _ = published
    folder = root / "versions" / "2"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    again = run_steps("2026-Q2", landing_root=SAMPLE_DIR / "landing", publish_root=root)  # the whole round
    assert again["merge"]["already_merged"]
    assert again["rank_and_audit"]["version"] == 2 and not again["rank_and_audit"]["built_now"]
    assert again["publish"]["version"] == 2 and not again["publish"]["published_now"]
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before
    assert conn.execute("SELECT count(*) FROM publish.version").fetchone()[0] == 2
    conn.rollback()


def test_a_version_written_before_a_crash_is_adopted_not_rewritten(published):
    """The directory was renamed into place but the warehouse never recorded the publication."""
    conn, root, _ = published
    folder = root / "versions" / "2"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    conn.execute("UPDATE publish.version SET status = 'AUDITED' WHERE version = 2")
    conn.execute("UPDATE publish.version SET status = 'PUBLISHED' WHERE version = 1")
    conn.commit()
    with conn.transaction():
        adopted = publish_version(conn, 2, root)
    assert adopted.published_now and adopted.manifest == verify_version_dir(folder)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before
    assert conn.execute("SELECT version, status FROM publish.version ORDER BY 1").fetchall() == [
        (1, "SUPERSEDED"),
        (2, "PUBLISHED"),
    ]
    conn.commit()


def test_a_tampered_version_directory_is_refused_not_adopted(published, tmp_path):
    conn, root, _ = published
    copy = tmp_path / "versions" / "2"
    copy.parent.mkdir(parents=True)
    shutil.copytree(root / "versions" / "2", copy)
    with open(copy / "keluarga.parquet", "ab") as fh:
        fh.write(b"x")
    conn.execute("UPDATE publish.version SET status = 'AUDITED' WHERE version = 2")  # as if never recorded
    conn.commit()
    try:
        with pytest.raises(PublishError, match="does not match its manifest checksum"):
            publish_version(conn, 2, tmp_path)
    finally:
        conn.rollback()
        conn.execute("UPDATE publish.version SET status = 'PUBLISHED' WHERE version = 2")
        conn.commit()


def test_a_folder_of_the_same_number_written_from_another_warehouse_is_refused_not_adopted(
    published, tmp_path
):
    """Another warehouse's version 2 (here: version 1's files, renumbered) is intact, and not ours."""
    conn, root, _ = published
    foreign = tmp_path / "versions" / "2"
    foreign.parent.mkdir(parents=True)
    shutil.copytree(root / "versions" / "1", foreign)
    manifest = json.loads((foreign / "manifest.json").read_text(encoding="utf-8"))
    (foreign / "manifest.json").write_text(json.dumps(manifest | {"version": 2}), encoding="utf-8")
    conn.execute("UPDATE publish.version SET status = 'AUDITED' WHERE version = 2")  # as if never recorded
    conn.commit()
    try:
        with pytest.raises(
            PublishError, match="holds another version 2 .*round_id, previous_version, counts"
        ):
            publish_version(conn, 2, tmp_path)
    finally:
        conn.rollback()
        conn.execute("UPDATE publish.version SET status = 'PUBLISHED' WHERE version = 2")
        conn.commit()


def test_explain_shows_desil_terms_sources_and_each_rule_for_a_sample_nik(published):
    conn, root, _ = published
    folder = root / "versions" / "2"
    child = _read(folder, "programs/sekolah_rakyat.parquet")["nik"].iloc[0]
    lines = explain(conn, int(child), None, load_model(), load_programs())
    text = "\n".join(lines)
    assert child not in text and f"************{child[-4:]}" in text  # masked
    assert "version 2" in lines[0] and "desil " in text and "main terms" in text
    assert "sekolah_rakyat: RECIPIENT" in text and "[x] aged 6-18 on the reference date" in text
    assert "pemda" in text  # where the inputs came from
    keluarga = _read(folder, "keluarga.parquet")
    rich_family = keluarga[keluarga["desil"] == 10]["no_kk"].iloc[0]
    anggota = _read(folder, "anggota.parquet")
    rich = anggota[anggota["no_kk"] == rich_family]["nik"].iloc[0]
    text = "\n".join(explain(conn, int(rich), 2, load_model(), load_programs()))
    assert "pbi_jk: not a recipient" in text and "[ ] family in desil 1-5" in text
    conn.rollback()


def test_a_program_added_in_configuration_selects_its_recipients(published):
    """Adding a program is a config change: its predicates run on the same eligibility context."""
    conn, root, _ = published
    document = json.loads(DEFAULT_PROGRAMS_PATH.read_text())
    document["programs"].append({"id": "lansia", "unit": "person", "desil_max": 3, "age_min": 60})
    programs = parse_programs(document)
    program = next(p for p in programs.programs if p.id == "lansia")
    reference, snapshot = conn.execute(
        "SELECT v.reference_date, r.dukcapil_snapshot_pk FROM publish.version v "
        "JOIN ingest.round r USING (round_seq) WHERE v.version = 2"
    ).fetchone()
    context = eligibility_context_sql("(SELECT * FROM publish.anggota WHERE version = 2)", programs)
    selected = {
        str(r[0])
        for r in conn.execute(
            f"SELECT c.nik FROM ({context}) c WHERE {program.eligible_sql()}",
            {"version": 2, "reference_date": reference, "snapshot_pk": snapshot},
        ).fetchall()
    }
    folder = root / "versions" / "2"
    people = _read(folder, "anggota.parquet").merge(
        _read(folder, "keluarga.parquet")[["no_kk", "desil"]], on="no_kk"
    )
    born = pd.to_datetime(people["tanggal_lahir"])
    age = 2026 - born.dt.year - ((born.dt.month > 6) | ((born.dt.month == 6) & (born.dt.day > 30)))
    assert selected and selected == set(people[(people["desil"] <= 3) & (age >= 60)]["nik"])
    conn.rollback()


def test_model_and_program_files_are_checked_before_any_sql_is_built():
    model = json.loads(DEFAULT_MODEL_PATH.read_text())
    model["terms"][0]["feature"] = "jenis_lantai; DROP TABLE registry.person"
    with pytest.raises(ModelError, match="unknown feature"):
        parse_model(model)
    model = json.loads(DEFAULT_MODEL_PATH.read_text())
    model["terms"][-1]["coefficient"] = "0); DELETE FROM registry.person; --"
    with pytest.raises(ModelError, match="expected a number"):
        parse_model(model)
    for bad in (
        {"id": "x'; --", "desil_max": 3},
        {"id": "ok_id", "desil_max": 11},
        {"id": "ok_id", "desil_max": 3, "exclude_family_status_pekerjaan": [9]},
    ):
        with pytest.raises(ProgramConfigError):
            parse_programs({"programs": [bad]})


def test_parquet_streaming_keeps_nulls_empty_strings_quotes_newlines_and_empty_results(published, tmp_path):
    db = published[0]
    query = (
        "SELECT * FROM (VALUES (1::bigint, 'a, \"quoted\"\nname'::text, NULL::date, true), "
        "(2, '', DATE '2026-01-31', NULL::boolean)) v(id, nama, tanggal, flag)"
    )
    assert copy_to_parquet(db, query, tmp_path / "x.parquet") == 2
    rows = pq.read_table(tmp_path / "x.parquet").to_pylist()
    assert rows[0]["nama"] == 'a, "quoted"\nname' and rows[0]["tanggal"] is None and rows[0]["flag"] is True
    assert rows[1]["nama"] == "" and str(rows[1]["tanggal"]) == "2026-01-31" and rows[1]["flag"] is None
    assert copy_to_parquet(db, f"{query} WHERE false", tmp_path / "empty.parquet") == 0
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_audit_blocks_a_drifted_candidate_until_an_admin_approves_it(
    published, tmp_path, monkeypatch, outbox
):
    """Round 2026-Q3 ranked with PBI JK cut to desil 1-2: recipients drop in every regency."""
    conn, root, _ = published
    landing = SAMPLE_DIR / "landing"
    run_steps("2026-Q3", landing_root=landing, publish_root=root, until="merge")
    document = json.loads(DEFAULT_PROGRAMS_PATH.read_text())
    next(p for p in document["programs"] if p["id"] == "pbi_jk")["desil_max"] = 2
    drifted = tmp_path / "programs.json"
    drifted.write_text(json.dumps(document))
    monkeypatch.setenv("DTSEN_PROGRAMS", str(drifted))
    blocked = run_steps(
        "2026-Q3", landing_root=landing, publish_root=root, only=("rank_and_audit", "publish")
    )
    audited = blocked["rank_and_audit"]
    assert audited["status"] == "BLOCKED" and "skipped" in blocked["publish"], audited["report"]
    drift = conn.execute("SELECT audit -> 'drift_flagged' FROM publish.version WHERE version = 3").fetchone()[
        0
    ]
    flagged = {(d["kode_kabupaten"], d["program"]) for d in drift}
    regencies = {p.name.split("-")[0] for p in (landing / "2026-Q3" / "pemda").iterdir()}
    assert flagged == {(r, "pbi_jk") for r in regencies}, audited["report"]
    assert any("drift" in line and "pbi_jk" in line for line in audited["report"])
    assert not (root / "versions" / "3").exists()
    assert conn.execute("SELECT version FROM publish.current_version").fetchone()[0] == 2
    told = [p.read_text() for p in outbox.glob("*.eml") if "Audit blocked version 3" in p.read_text()]
    assert len(told) == 1  # data ops were told, once
    from dtsen.publish.approval import pending_approval

    assert pending_approval(conn, "2026-Q3").approvable
    waiting = run_steps("2026-Q3", landing_root=landing, publish_root=root, only=("approval",))["approval"]
    assert waiting == {
        "round_id": "2026-Q3",
        "version": 3,
        "status": "BLOCKED",
        "asked": False,
        "approvable": True,
    }
    from dtsen.round import RoundContext, record_approval

    nobody = RoundContext.create("2026-Q3", dag_run_id="manual__test")  # the approval task's timeout
    outcome = record_approval(nobody, approved=False, decided_by=None, reason=None, timed_out=True)
    assert outcome == {"round_id": "2026-Q3", "version": 3, "decision": "TIMED_OUT"}
    assert record_approval(nobody, approved=False, decided_by=None, reason=None, timed_out=True) == outcome
    assert conn.execute("SELECT status FROM publish.version WHERE version = 3").fetchone()[0] == "BLOCKED"
    with pytest.raises(AuditError, match="approver's name and a reason"):
        approve_version(conn, 3, "", "")
    audit = conn.execute("SELECT audit FROM publish.version WHERE version = 3").fetchone()[0]
    conn.execute(
        "UPDATE publish.version SET audit = jsonb_set(audit, '{checks,0,success}', 'false') WHERE version = 3"
    )
    assert pending_approval(conn, "2026-Q3") is None  # a broken invariant is never put to a person
    with pytest.raises(AuditError, match="nik_unique: an invariant cannot be approved"):
        approve_version(conn, 3, "admin.pusat", "trying to approve a duplicate NIK")
    conn.rollback()
    assert audit["checks"][0]["rule"] == "nik_unique"
    approve_version(conn, 3, "admin.pusat", "PBI JK narrowed to desil 1-2 by ministerial decree (test)")
    assert build_candidate(conn, "2026-Q3", load_model(), load_programs()).status == "APPROVED"
    conn.commit()
    approved = run_steps(
        "2026-Q3", landing_root=landing, publish_root=root, only=("rank_and_audit", "publish")
    )
    assert approved["publish"]["version"] == 3
    assert _manifest(root, 3)["audit"]["approved_by"] == "admin.pusat"
    assert conn.execute(
        "SELECT status, approved_by, approval_reason IS NOT NULL FROM publish.version WHERE version = 3"
    ).fetchone() == ("PUBLISHED", "admin.pusat", True)
    assert conn.execute("SELECT version FROM publish.current_version").fetchone()[0] == 3
    assert conn.execute(
        "SELECT outcome, decided_by, channel FROM publish.approval_decision WHERE version = 3 ORDER BY decision_pk"
    ).fetchall() == [("TIMED_OUT", None, "airflow-ui"), ("APPROVED", "admin.pusat", "cli")]
    conn.rollback()
