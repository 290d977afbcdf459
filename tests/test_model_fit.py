"""A calibrated welfare model learnt from the BPS measurements (issue 25, steps 6-8): the training data
are each family's latest measurement in the window, with the family as the version of that
measurement's round ranked it; the fitted ridge pipeline, written as a ranking model document, scores
in the warehouse exactly as it predicts; regional offsets are shrunk toward the national model where
measurements are few; targeting errors are cross-validated with folds by village and cut at national
desil thresholds, for the candidate and the current model alike.

The sample's three rounds carry 183 BPS measurements of 172 families in 135 villages."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from dtsen.domain.codes import FAMILY_ATTRIBUTES
from dtsen.paths import SAMPLE_DIR
from dtsen.rank.model import FEATURES, MEMBER_FEATURES, family_features_query, load_model, parse_model
from tests.factories import land_bps_round, run_steps

ROUNDS = ("2026-Q1", "2026-Q2", "2026-Q3")
CURRENT_VERSION = 3  # the sample's third round, published


# -- what needs no warehouse --------------------------------------------------------------------------


def test_targeting_errors_of_hand_made_arrays_are_exact():
    from dtsen.model.evaluate import targeting_errors

    score = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y = np.array([2.0, 1.0, 6.0, 3.0, 5.0, 4.0])
    weight = np.array([1, 2, 3, 1, 2, 1])
    where = np.array(["11", "11", "11", "12", "12", "12"])
    cut = {3: 3.5, 4: np.array([2.5, 2.5, 2.5, 10.0, 10.0, 10.0]), 5: 0.0}  # one cut, or one per family
    line = {3: 3.5, 4: 4.5, 5: 100.0}
    errors = targeting_errors(score, cut, y, line, weight, where)
    national = errors["national"]
    # d=3: selected 0,1,2 (6 persons), of them 2 not poor (3); poor 0,1,3 (4), of them 3 not selected (1)
    assert national["3"] == {"inclusion": 3 / 6, "exclusion": 1 / 4}
    # d=4: every family but 2 selected (7 persons), 4 is not poor (2); poor 0,1,3,5 all selected
    assert national["4"] == {"inclusion": 2 / 7, "exclusion": 0.0}
    # d=5: nobody selected (no inclusion error to speak of), everybody poor and left out
    assert national["5"] == {"inclusion": None, "exclusion": 1.0}
    assert national["spearman"] == pytest.approx(19 / 35)  # 1 - 6*16/(6*35)
    assert national["n"] == 6
    assert errors["per_province"]["11"]["3"] == {"inclusion": 3 / 6, "exclusion": 0.0}
    assert errors["per_province"]["12"]["3"] == {"inclusion": None, "exclusion": 1.0}
    assert [errors["per_province"][p]["n"] for p in ("11", "12")] == [3, 3]


def test_errors_judged_against_welfare_net_of_the_survey_noise_are_the_true_errors():
    """Welfare w, a model's prediction (w + model error, sd 0.18) and a survey's measurement (w + noise,
    sd 0.15): judged against the measurement the errors are inflated; judged against welfare drawn
    from measurement and prediction with the noise known, they are what the truth gives."""
    from dtsen.model.evaluate import errors_against_welfare, poverty_lines, targeting_errors, welfare_draws

    rng = np.random.default_rng(5)
    n = 20_000
    welfare = rng.normal(13.5, 0.5, n)
    prediction = welfare + rng.normal(0, 0.18, n)
    measured = welfare + rng.normal(0, 0.15, n)
    weight = rng.integers(1, 7, n)
    keys, where = np.arange(n), np.where(np.arange(n) % 2, "11", "12")
    cut = poverty_lines(prediction, weight, keys)  # select as many as are poor
    true = targeting_errors(prediction, cut, welfare, poverty_lines(welfare, weight, keys), weight, where)
    naive = targeting_errors(prediction, cut, measured, poverty_lines(measured, weight, keys), weight, where)
    drawn = welfare_draws(prediction, measured, 0.15, draws=40)
    corrected = errors_against_welfare(prediction, cut, drawn, weight, keys, where)
    for d in ("3", "5"):
        for kind in ("inclusion", "exclusion"):
            assert naive["national"][d][kind] > true["national"][d][kind] + 0.025
            assert corrected["national"][d][kind] == pytest.approx(true["national"][d][kind], abs=0.01)
            assert corrected["per_province"]["11"][d][kind] == pytest.approx(
                true["per_province"]["11"][d][kind], abs=0.015
            )
    assert corrected["national"]["spearman"] == pytest.approx(true["national"]["spearman"], abs=0.005)
    assert naive["national"]["spearman"] < true["national"]["spearman"] - 0.02
    assert corrected["national"]["n"] == n


def test_poverty_lines_are_the_person_weighted_desil_thresholds_of_the_ranking_rule():
    from dtsen.model.evaluate import desil, poverty_lines

    # five families of two persons: 0, 2, 4, 6, 8 of 10 ranked before them -> desil 1, 3, 5, 7, 9
    y = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    weight = np.full(5, 2)
    assert desil(y, weight).tolist() == [9, 1, 5, 3, 7]
    assert poverty_lines(y, weight) == {3: 3.0, 4: 3.0, 5: 4.0}
    # ties are ordered by the key (no_kk), as the ranking orders them
    assert desil(np.array([2.0, 2.0, 1.0, 3.0]), np.ones(4), np.array([20, 10, 30, 40])).tolist() == [
        6,
        3,
        1,
        8,
    ]


REGIONAL_CURRENT = {
    "name": "test",
    "version": "1",
    "intercept": 13.0,
    "terms": [
        {"feature": "jenis_lantai", "type": "category", "coefficients": {"2": -0.1}},
        {"feature": "log_luas_lantai_per_kapita", "type": "linear", "coefficient": 0.3, "default": 2.5},
    ],
}


def _regional_world(
    seed: int, villages: list[tuple[int, int, int]], offset: dict[int, float]
) -> pd.DataFrame:
    """Measured families: (province, villages, families per village); log expenditure from two proxies,
    the province's offset, a village effect and noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for province, count, per in villages:
        for v in range(count):
            kode = f"{province}01{v // 100 + 1:02d}{1 + v % 2}{v % 100:03d}"
            village_effect = rng.normal(0, 0.1)
            for _ in range(per):
                x, lantai = rng.normal(2.5, 0.5), int(rng.integers(1, 4))
                y = 13 + 0.3 * x - 0.1 * (lantai - 1) + offset[province] + village_effect + rng.normal(0, 0.4)
                rows.append(
                    {
                        "kode_wilayah": kode,
                        "kode_provinsi": float(province),
                        "perkotaan": float(kode[6] == "1"),
                        "jenis_lantai": float(lantai),
                        "log_luas_lantai_per_kapita": x,
                        "y": y,
                    }
                )
    return pd.DataFrame(rows)


def _province_offsets(fitted, frame, current) -> dict[str, float]:
    document = fitted.document(frame, current, version="t", training={})
    (term,) = [t for t in document["terms"] if t["feature"] == "kode_provinsi"]
    assert term["group"] == "region"
    big = np.mean([term["coefficients"][str(p)] for p in range(11, 21)])
    return {p: c - big for p, c in term["coefficients"].items()}


def test_a_region_with_few_measurements_gets_a_shrunk_offset():
    """Ten provinces of 80 measured families with small offsets, one of 15 (three villages) 0.25 above:
    the penalty chosen by cross-validation pulls the small province's offset toward the national model
    much more than the large provinces', and its families are still predicted better than by a model
    without regional terms."""
    from dtsen.model.design import design_for
    from dtsen.model.fit import fit

    current = parse_model(REGIONAL_CURRENT)
    rng = np.random.default_rng(100)
    offset = {p: float(rng.normal(0, 0.1)) for p in range(11, 21)} | {99: 0.25}
    frame = _regional_world(0, [(p, 10, 8) for p in range(11, 21)] + [(99, 3, 5)], offset)
    design = design_for(current, frame)
    fitted = fit(frame, design)
    unpenalised = fit(frame, design, alphas=(1e-6,), region_scales=(1.0,))
    shrunk, raw = _province_offsets(fitted, frame, current), _province_offsets(unpenalised, frame, current)
    small = shrunk["99"] / raw["99"]
    large = np.median([shrunk[str(p)] / raw[str(p)] for p in range(11, 21) if abs(raw[str(p)]) > 0.05])
    assert 0 < small < 0.8 and small < large - 0.1

    national = fit(frame, design_for(current, frame, regions=()))
    fresh = _regional_world(1000, [(99, 50, 5)], offset)
    assert np.mean((fitted.predict(fresh) - fresh["y"]) ** 2) < np.mean(
        (national.predict(fresh) - fresh["y"]) ** 2
    )


# -- on the sample's published rounds -----------------------------------------------------------------


@pytest.fixture(scope="module")
def published(module_warehouse, tmp_path_factory):
    """The sample's three rounds, each published."""
    conn = module_warehouse
    publish = tmp_path_factory.mktemp("publish")
    for round_id in ROUNDS:
        run_steps(round_id, landing_root=SAMPLE_DIR / "landing", publish_root=publish)
    conn.commit()
    return conn, publish


@pytest.fixture(scope="module")
def frame(published):
    from dtsen.model.training import training_frame

    conn = published[0]
    with conn.transaction():
        return training_frame(conn, load_model())


@pytest.fixture(scope="module")
def cross_validated(frame):
    from dtsen.model.design import design_for
    from dtsen.model.fit import cross_validate

    return cross_validate(frame, design_for(load_model(), frame))


def _latest_in_window(conn, after: dt.date) -> dict[int, tuple]:
    latest: dict[int, tuple] = {}
    for no_kk, surveyed, rupiah, round_seq in conn.execute(
        "SELECT no_kk, tanggal_survei, pengeluaran_per_kapita, round_seq FROM registry.bps_measurement"
    ):
        if surveyed > after and (no_kk not in latest or (surveyed, round_seq) > latest[no_kk][:2]):
            latest[no_kk] = (surveyed, round_seq, rupiah)
    return latest


def test_the_training_frame_is_each_familys_latest_measurement_in_the_window(published, frame):
    from dtsen.model.training import summary, training_frame

    conn = published[0]
    assert frame.attrs["as_of"] == "2026-09-30" and frame.attrs["as_of_version"] == CURRENT_VERSION
    assert conn.execute(
        "SELECT count(*) FROM (SELECT no_kk FROM registry.bps_measurement GROUP BY no_kk HAVING count(*) > 1) t"
    ).fetchone()[0], "the sample measures some families twice"
    expected = _latest_in_window(conn, dt.date(2023, 9, 30))
    assert frame["no_kk"].is_unique and set(frame["no_kk"]) == set(expected)
    got = {r.no_kk: (r.tanggal_survei, r.round_seq) for r in frame.itertuples()}
    assert got == {k: v[:2] for k, v in expected.items()}
    assert np.allclose(frame["y"], [math.log(expected[k][2]) for k in frame["no_kk"]], atol=1e-12, rtol=0)
    version_of_round = dict(conn.execute("SELECT round_seq, version FROM publish.version").fetchall())
    assert (frame["version"] == frame["round_seq"].map(version_of_round)).all()
    assert frame.attrs["measured"] == len(frame) and frame.attrs["unranked"] == frame.attrs["not_ranked"] == 0
    assert summary(frame)["families"] == len(frame) == sum(summary(frame)["families_per_province"].values())

    with conn.transaction():
        narrow = training_frame(conn, load_model(), months=3)  # surveyed after 2026-06-30
    assert set(narrow["no_kk"]) == set(_latest_in_window(conn, dt.date(2026, 6, 30))) != set(expected)
    assert (narrow["tanggal_survei"] > dt.date(2026, 6, 30)).all()


def test_a_family_changed_after_its_survey_is_seen_as_it_was_surveyed(published, frame):
    """Every family attribute equals the registry's history as of the measurement's round
    (registry.family_as_of), and a family a later round changed shows the value before the change."""
    conn = published[0]
    attributes = list(FAMILY_ATTRIBUTES)
    for round_seq, part in frame.groupby("round_seq"):
        history = conn.execute(
            f"SELECT no_kk, kode_wilayah, {', '.join(attributes)} FROM registry.family_as_of(%s::smallint) "
            "WHERE no_kk = ANY(%s)",
            (int(round_seq), part["no_kk"].tolist()),
        ).fetchall()
        as_of = pd.DataFrame(history, columns=["no_kk", "kode_wilayah", *attributes]).set_index("no_kk")
        mine = part.set_index("no_kk").loc[as_of.index]
        assert (mine["kode_wilayah"] == as_of["kode_wilayah"]).all()
        pd.testing.assert_frame_equal(
            mine[attributes], as_of[attributes].astype("float64"), check_names=False, check_dtype=False
        )

    changed = conn.execute(
        "SELECT DISTINCT ON (c.entity_key, c.field) c.entity_key, c.field, c.old_value, f_now.value "
        "FROM registry.field_change c "
        "JOIN unnest(%s::bigint[], %s::int[]) m(no_kk, round_seq) ON m.no_kk = c.entity_key AND c.round_seq > m.round_seq "
        "CROSS JOIN LATERAL (SELECT to_jsonb(f) ->> c.field AS value FROM registry.family f WHERE f.no_kk = c.entity_key) f_now "
        "WHERE c.entity = 'F' AND c.field = ANY(%s) ORDER BY c.entity_key, c.field, c.round_seq",
        (frame["no_kk"].tolist(), frame["round_seq"].tolist(), attributes),
    ).fetchall()
    assert len(changed) >= 5, "the sample's later rounds change some measured families"
    row = frame.set_index("no_kk")
    for no_kk, field, old, _ in changed:
        assert row.at[no_kk, field] == float(old), (no_kk, field)
    assert any(float(now) != row.at[no_kk, field] for no_kk, field, _, now in changed if now is not None)


def test_the_current_models_score_in_the_frame_is_its_terms_over_the_frames_features(frame):
    """s_current is the model's SQL over the family as ranked; the frame's features are what that SQL
    reads: the model's sum over the frame's columns gives the same number."""
    model = load_model()
    total = np.full(len(frame), model.intercept)
    for term in model.terms:
        values = frame[term.feature]
        if term.type == "category":
            total += values.map({float(code): c for code, c in term.coefficients.items()}).fillna(0.0)
        else:
            total += term.coefficient * values.fillna(term.default)
    assert np.allclose(frame["s_current"], total, atol=1e-9, rtol=0)


def _population(conn, version: int, score_sql: str) -> pd.DataFrame:
    """Every family of a version with every library feature and a model's score, by the library's SQL."""
    select = ", ".join(
        ["f.no_kk", "f.kode_wilayah"]
        + [f"({expr})::float8 AS {name}" for name, expr in FEATURES.items()]
        + [f"({score_sql})::float8 AS score"]
    )
    query = family_features_query(
        select,
        f"(SELECT * FROM publish.keluarga WHERE version = {version})",
        f"(SELECT * FROM publish.anggota WHERE version = {version})",
        list(MEMBER_FEATURES),
    )
    (reference_date,) = conn.execute(
        "SELECT reference_date FROM publish.version WHERE version = %s", (version,)
    ).fetchone()
    cur = conn.execute(query, {"reference_date": reference_date})
    population = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    population[list(FEATURES)] = population[list(FEATURES)].astype("float64")
    return population


def test_the_exported_document_scores_in_the_warehouse_as_the_pipeline_predicts(published, frame):
    from dtsen.model.design import design_for
    from dtsen.model.fit import fit
    from dtsen.model.training import summary, training_frame

    conn = published[0]
    current = load_model()
    design = design_for(current, frame)
    fitted = fit(frame, design)
    document = fitted.document(frame, current, version="2", training=summary(frame))
    model = parse_model(document)

    assert document["version"] == "2" and document["name"] == current.name
    assert document["bps_measurement_max_age_months"] == current.bps_max_age_months
    assert document["regions"] == ["province", "urban"]
    assert document["penalty"]["method"] == "ridge" and document["penalty"]["alpha"] == fitted.alpha
    assert document["penalty"]["region_scale"] == fitted.region_scale
    assert document["penalty"]["library"] == "scikit-learn 1.9.1"
    assert "GroupKFold(5) by village" in document["penalty"]["cv"]
    assert document["training"]["families"] == len(frame) == 172
    assert document["training"]["families_per_province"] == {"36": 49, "62": 46, "64": 32, "94": 45}
    features = [t["feature"] for t in document["terms"]]
    assert features == [t.feature for t in current.terms] + ["kode_provinsi", "perkotaan"]
    assert {t["feature"] for t in document["terms"] if t.get("group") == "region"} == {
        "kode_provinsi",
        "perkotaan",
    }

    # the measured families as they were ranked: the training query's score is the pipeline's prediction
    with conn.transaction():
        scored = training_frame(conn, model)
    assert np.allclose(scored["s_current"], fitted.predict(frame), atol=1e-6, rtol=0)

    # the whole current population, with codes the training never saw and NULL features
    population = _population(conn, CURRENT_VERSION, model.score_sql())
    unseen = [f for f in design.categories if set(population[f].dropna()) - set(design.codes[f])]
    assert unseen and population[design.columns].isna().any().any()
    assert np.allclose(population["score"], fitted.predict(population), atol=1e-6, rtol=0)


def test_no_village_is_in_two_folds(frame, cross_validated):
    from dtsen.model.fit import outer_folds

    cv = cross_validated
    assert cv.folds == 5 and sorted(set(cv.fold)) == [0, 1, 2, 3, 4]
    assert pd.Series(cv.fold).groupby(frame["kode_wilayah"].to_numpy()).nunique().max() == 1
    assert np.isfinite(cv.prediction).all() and len(cv.models) == 5
    assert (outer_folds(frame, 5, cv.seed) == cv.fold).all()  # the folds are reproducible


def test_the_current_models_national_thresholds_are_its_versions_desil_floors(published):
    """The population pass ranks as the version was ranked: the current model's thresholds over
    version 3 are the lowest scores of desil 4, 5 and 6 in publish.keluarga."""
    from dtsen.model.evaluate import population_thresholds

    conn = published[0]
    with conn.transaction():
        thresholds = population_thresholds(conn, {"current": load_model()}, CURRENT_VERSION)
        floors = dict(
            conn.execute(
                "SELECT desil - 1, min(skor_kesejahteraan) FROM publish.keluarga WHERE version = %s "
                "AND desil IN (4, 5, 6) GROUP BY desil",
                (CURRENT_VERSION,),
            ).fetchall()
        )
    assert thresholds == {"current": floors}


def test_the_cross_validated_errors_judge_both_models_on_the_same_families(published, frame, cross_validated):
    from dtsen.model.evaluate import evaluate, poverty_lines

    conn = published[0]
    with conn.transaction():
        errors = evaluate(conn, frame, load_model(), cross_validated)
        floors = dict(
            conn.execute(
                "SELECT desil - 1, min(skor_kesejahteraan) FROM publish.keluarga WHERE version = %s "
                "AND desil IN (4, 5, 6) GROUP BY desil",
                (CURRENT_VERSION,),
            ).fetchall()
        )
    assert errors["cv"]["folds"] == 5 and errors["cv"]["grouped_by"] == "village"
    for model in ("candidate", "current"):
        national = errors[model]["national"]
        assert national["n"] == len(frame) == sum(p["n"] for p in errors[model]["per_province"].values())
        assert set(errors[model]["per_province"]) == {"36", "62", "64", "94"}
        for cutoff in ("3", "4", "5"):
            assert 0 <= national[cutoff]["inclusion"] <= 1 and 0 <= national[cutoff]["exclusion"] <= 1
        assert 0.5 < national["spearman"] <= 1

    # the current model: its own score, cut where version 3 cut it; poor by the measured expenditure
    weight = frame["jumlah_anggota"]
    lines = poverty_lines(frame["y"], frame["jumlah_anggota"].astype(int), frame["no_kk"])
    selected = frame["s_current"] < floors[5]
    poor = frame["y"] < lines[5]
    assert errors["current"]["national"]["5"] == {
        "inclusion": pytest.approx(weight[selected & ~poor].sum() / weight[selected].sum()),
        "exclusion": pytest.approx(weight[poor & ~selected].sum() / weight[poor].sum()),
    }
    # each fold model has national thresholds of its own over the same population
    fold_cuts = {tuple(errors["cv"]["thresholds"][f"fold_{f}"].values()) for f in range(5)}
    assert len(fold_cuts) == 5


def test_families_measured_twice_tell_the_survey_noise_and_too_few_leave_the_measurement_as_judge(
    published, frame, cross_validated
):
    from dtsen.model.evaluate import MIN_PAIRS, SurveyNoise, evaluate

    conn = published[0]
    latest_two: dict[int, list[float]] = {}
    for no_kk, rupiah in conn.execute(
        "SELECT no_kk, pengeluaran_per_kapita FROM registry.bps_measurement "
        "WHERE tanggal_survei > '2023-09-30' ORDER BY no_kk, tanggal_survei DESC, round_seq DESC"
    ):
        latest_two.setdefault(no_kk, []).append(math.log(rupiah))
    differences = [v[0] - v[1] for v in latest_two.values() if len(v) > 1]
    repeated = frame.attrs["repeated"]
    assert repeated["pairs"] == len(differences) > 0
    assert repeated["variance"] == pytest.approx(np.var(differences, ddof=1), rel=1e-9)

    # the sample measures too few families twice: its errors are judged against the measurement
    assert repeated["pairs"] < MIN_PAIRS and SurveyNoise.of(frame).sd is None
    with conn.transaction():
        as_measured = evaluate(conn, frame, load_model(), cross_validated)
    assert as_measured["cv"]["survey_noise"]["sd"] is None
    assert as_measured["cv"]["against_measurement"]["candidate"] == as_measured["candidate"]["national"]

    # had BPS measured enough families twice, the same folds are judged against welfare net of noise
    told = frame.copy()
    told.attrs = frame.attrs | {"repeated": {"pairs": MIN_PAIRS, "variance": 2 * 0.15**2}}
    with conn.transaction():
        as_welfare = evaluate(conn, told, load_model(), cross_validated)
    noise = as_welfare["cv"]["survey_noise"]
    assert noise["sd"] == pytest.approx(0.15) and noise["families_measured_twice"] == MIN_PAIRS
    assert "welfare" in noise["judged_against"] and noise["draws"] > 0
    assert as_welfare["cv"]["against_measurement"] == as_measured["cv"]["against_measurement"]
    for model in ("candidate", "current"):
        assert as_welfare[model]["national"] != as_measured[model]["national"]
        assert as_welfare[model]["national"]["n"] == len(frame)
        assert set(as_welfare[model]["per_province"]) == set(as_measured[model]["per_province"])


def test_a_later_rounds_measurement_enters_only_as_of_its_own_version(published, frame, tmp_path_factory):
    """A round 2026-Q4 measures again a family measured in Q3, with another floor: as of the published
    version 3 nothing changes; as of Q4's version 4 the family counts once, with its Q4 measurement
    and the floor Q4 gave it."""
    from dtsen.model.training import training_frame

    conn, publish = published
    conn.rollback()  # what earlier tests read: the round's steps take locks of their own
    family = frame[(frame["round_seq"] == 3) & frame["jenis_lantai"].notna()].iloc[0]
    floor = 1 if family["jenis_lantai"] != 1 else 2
    landing = land_bps_round(
        tmp_path_factory.mktemp("q4") / "landing",
        "2026-Q4",
        [f"{family['no_kk']},{family['kode_wilayah']},2026-10-16,{floor},987654"],
    )
    run_steps("2026-Q4", landing_root=landing, publish_root=publish, until="rank_and_audit")
    conn.commit()
    with conn.transaction():
        as_of_published = training_frame(conn, load_model())
        as_of_q4 = training_frame(conn, load_model(), as_of_version=4)
    pd.testing.assert_frame_equal(as_of_published, frame)
    assert as_of_q4["no_kk"].is_unique and len(as_of_q4) == len(frame)
    row = as_of_q4.set_index("no_kk").loc[family["no_kk"]]
    assert (row["round_seq"], row["version"], row["jenis_lantai"]) == (4, 4, float(floor))
    assert row["y"] == pytest.approx(math.log(987654))
    others = as_of_q4[as_of_q4["no_kk"] != family["no_kk"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        others, frame[frame["no_kk"] != family["no_kk"]].reset_index(drop=True), check_like=True
    )
