"""The ranking model's feature library: regional terms (province, regency, urban/rural from the village
code) are ordinary category terms, and the seed model's generated SQL does not move."""

from __future__ import annotations

import copy
import hashlib
import re

import pytest

from dtsen.paths import PROJECT_ROOT
from dtsen.publish.candidate import rank_query, rank_statement
from dtsen.rank import model as library
from dtsen.rank.model import ModelError, family_features_query, feature_library_sha, load_model, parse_model

SEED_MODEL = PROJECT_ROOT / "config" / "ranking" / "pmt-v1.json"
# sha256 and length of rank_statement(seed model, "rescore_member") as generated before the regional
# features existed (then into a temporary table): a model without region terms must rank with exactly
# the same SQL text
SEED_RANK_STATEMENT = ("946d45c84674c0872d37d2b4f07434bb401ea2b8f3cb32edde14589db2835fa7", 4578)

REGIONAL_MODEL = {
    "name": "dtsen-pmt-regional",
    "version": "2",
    "target": "log monthly per-capita expenditure (rupiah)",
    "bps_measurement_max_age_months": 12,
    "intercept": 13.0,
    "terms": [
        {
            "feature": "jenis_lantai",
            "type": "category",
            "coefficients": {"1": 0.2},
            "mean_contribution": 0.01,
        },
        {
            "feature": "kode_provinsi",
            "type": "category",
            "coefficients": {"32": 0.1, "33": -0.2},
            "mean_contribution": 0.0,
            "group": "region",
        },
        {
            "feature": "kode_kabupaten",
            "type": "category",
            "coefficients": {"3273": 0.05},
            "mean_contribution": 0.0,
            "group": "region",
        },
        {"feature": "perkotaan", "type": "category", "coefficients": {"1": 0.3}, "group": "region"},
        {"feature": "log_jumlah_anggota", "type": "linear", "coefficient": -0.4, "default": 1.0},
    ],
    "training": {"window_months": 36, "from": "2023-01-01", "to": "2026-01-01", "families": 86},
    "penalty": {"method": "ridge", "alpha": 1.0, "region_scale": 0.5, "library": "scikit-learn"},
    "regions": ["province", "urban"],
    "fitted_on": "hand-made",
}

# (no_kk, kode_wilayah, jenis_lantai, members, expected score by hand)
FAMILIES = [
    # kelurahan (village digit 1) in Kota Bandung (32.73): province, regency and urban terms all apply
    (1, "3273011001", 1, 2, 13.0 + 0.2 + 0.1 + 0.05 + 0.3 - 0.4 * 0.6931471805599453),
    # desa (2) in the same regency: no urban term
    (2, "3273012005", 2, 1, 13.0 + 0.1 + 0.05),
    # desa adat (3), another province and regency: rural, the province's own offset only
    (3, "3301023001", None, 3, 13.0 - 0.2 - 0.4 * 1.0986122886681098),
    # a kelurahan in a province the model has no offset for: national level plus the urban term
    (4, "9171011002", 1, 1, 13.0 + 0.2 + 0.3),
    # no village code at all: every region term is the reference level (0)
    (5, None, None, 1, 13.0),
]


def _rank_statement_fingerprint(statement: str) -> tuple[str, int]:
    return hashlib.sha256(statement.encode()).hexdigest(), len(statement)


def test_a_model_with_province_regency_and_urban_terms_parses_with_its_extra_keys():
    model = parse_model(copy.deepcopy(REGIONAL_MODEL))
    region = {
        t.feature: t for t in model.terms if t.feature in ("kode_provinsi", "kode_kabupaten", "perkotaan")
    }
    assert region["kode_provinsi"].coefficients == {32: 0.1, 33: -0.2}
    assert region["kode_kabupaten"].coefficients == {3273: 0.05}
    assert region["perkotaan"].type == "category" and region["perkotaan"].coefficients == {1: 0.3}
    # the whole document (training window, penalty, regions, term groups) is what the checksum covers
    assert model.document["penalty"]["alpha"] == 1.0 and model.reference["sha256"] == model.sha256
    # the features reach the SQL only as library expressions over the family's village code
    sql = model.score_sql()
    assert "left(f.kode_wilayah, 2)::int" in sql and "left(f.kode_wilayah, 4)::int" in sql
    assert "substr(f.kode_wilayah, 7, 1)" in sql


def test_a_region_term_with_a_non_numeric_code_is_refused():
    document = copy.deepcopy(REGIONAL_MODEL)
    document["terms"][1]["coefficients"] = {"32; DROP TABLE registry.person": 0.1}
    with pytest.raises(ModelError, match=r"terms\[1\] \('kode_provinsi'\): category code"):
        parse_model(document)


def test_region_terms_score_kelurahan_desa_and_desa_adat_families_as_the_hand_sum(db):
    """The generated score SQL, run in the warehouse over hand-made families, equals the sum by hand."""
    model = parse_model(copy.deepcopy(REGIONAL_MODEL))
    db.execute("CREATE TEMP TABLE hand_family (no_kk bigint, kode_wilayah text, jenis_lantai smallint)")
    db.execute("CREATE TEMP TABLE hand_member (no_kk bigint, tanggal_lahir date)")
    for no_kk, kode, lantai, members, _ in FAMILIES:
        db.execute("INSERT INTO hand_family VALUES (%s, %s, %s)", (no_kk, kode, lantai))
        for _ in range(members):
            db.execute("INSERT INTO hand_member VALUES (%s, DATE '1980-01-01')", (no_kk,))
    select = (
        "f.no_kk, ("
        + model.score_sql()
        + ")::float8, "
        + ", ".join(
            f"({library.FEATURES[n]})::float8" for n in ("kode_provinsi", "kode_kabupaten", "perkotaan")
        )
    )
    query = family_features_query(select, "hand_family", "hand_member", model.member_features_used())
    rows = {r[0]: r[1:] for r in db.execute(query + " ORDER BY f.no_kk", {"reference_date": "2026-03-31"})}
    for no_kk, kode, _, _, expected in FAMILIES:
        assert rows[no_kk][0] == pytest.approx(expected, abs=1e-12), (no_kk, kode)
    # the features themselves: province, regency, and urban = village digit 1 (the 7th character)
    assert rows[1][1:] == (32.0, 3273.0, 1.0) and rows[2][1:] == (32.0, 3273.0, 0.0)
    assert rows[3][1:] == (33.0, 3301.0, 0.0) and rows[4][1:] == (91.0, 9171.0, 1.0)
    assert rows[5][1:] == (None, None, None)


def test_perkotaan_agrees_with_the_reference_villages_type(db):
    """urban is exactly ref.desa.jenis = 1 (kelurahan); desa (2) and desa adat (3) are rural."""
    disagreeing = db.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE jenis = 3)
            FROM (SELECT kode AS kode_wilayah, jenis FROM ref.desa) f
            WHERE ({library.FEATURES["perkotaan"]}) <> (jenis = 1)::int"""
    ).fetchone()
    assert disagreeing == (0, 0)
    assert db.execute("SELECT count(*) FROM ref.desa WHERE jenis = 3").fetchone()[0] > 0


def test_a_regional_model_ranks_registry_families_through_the_ordinary_rank_statement(db):
    """rank_statement over registry.current_family accepts the region terms (the SQL is valid there)."""
    model = parse_model(copy.deepcopy(REGIONAL_MODEL))
    db.execute("CREATE TEMP TABLE rescore_member AS SELECT * FROM publish.anggota LIMIT 0")
    db.execute(rank_statement(model, "rescore_member"), {"reference_date": "2026-03-31"})
    assert db.execute("SELECT count(*) FROM rescored").fetchone()[0] == 0


def test_the_seed_models_rank_statement_is_unchanged_by_the_regional_features():
    statement = "CREATE TEMP TABLE rescored ON COMMIT DROP AS " + rank_query(
        load_model(SEED_MODEL), "rescore_member"
    )
    assert _rank_statement_fingerprint(statement) == SEED_RANK_STATEMENT, statement
    assert not re.search(r"kode_wilayah", load_model(SEED_MODEL).score_sql())


def test_the_feature_library_hash_covers_the_feature_sql(monkeypatch):
    before = feature_library_sha()
    assert re.fullmatch(r"[0-9a-f]{64}", before) and feature_library_sha() == before
    monkeypatch.setitem(library.FEATURES, "perkotaan", "(substr(f.kode_wilayah, 7, 1) IN ('1', '3'))::int")
    assert feature_library_sha() != before
    monkeypatch.undo()
    monkeypatch.setitem(library.MEMBER_FEATURES, "jumlah_anggota", "count(DISTINCT m.no_kk)")
    assert feature_library_sha() != before
    monkeypatch.undo()
    monkeypatch.setattr(library, "AGE_SQL", library.AGE_SQL.replace("age(", "age(1 + "))
    assert feature_library_sha() != before
    monkeypatch.undo()
    assert feature_library_sha() == before
