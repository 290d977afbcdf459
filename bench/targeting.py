"""Targeting of a calibrated welfare model against a world's truth (issue 25, item 7 and its targets).

    .venv/bin/python bench/targeting.py --persons 120000 --rounds 4 --regencies 12 --bps-share 0.03 \
        --bps-panel 0.25 --out bench/results/2026-12-05-issue-25-targeting-survey-noise.json

A `regional` world (dtsen-dev generate --relation regional: proxies relate to welfare otherwise than
the default model assumes, with province, regency and kelurahan/desa offsets no proxy shows; BPS
measures --bps-share of the families each round, --bps-panel of them families it measured before, whose
two measurements tell the survey's noise) goes through every round's own steps
(dtsen.round.STEPS) in a database of its own, all but its last round (--rounds of --rounds + 1). On
the last published version V, three models rank V's
whole population (its families and members exactly as V holds them, features by the ranking's own
feature SQL), side by side:

  default     the fixed model the ranking ships (config/ranking/pmt-v1.json);
  calibrated  dtsen.model: training_frame (the BPS measurements the rounds brought, as their rounds
              ranked the families) -> design_for (province and urban terms) -> fit (penalty by
              GroupKFold by village) -> cross_validate -> evaluate (the model card's errors);
  oracle      the same pipeline (design, penalty search) fitted on the world's TRUE welfare
              (truth/<last round>/welfare.csv.gz) of every family of V: the best this pipeline can do.

Each model's prediction alone (no BPS measurement replaces it) is cut into national desil by the
ranking's rule (one person-weighted ordering, ties by no_kk) and compared with the true desil (the same
rule on the true welfare): Spearman, inclusion and exclusion error at desil 1-3/1-4/1-5 (individuals),
nationally and per province (national cut points). The calibrated model's cross-validated errors (what
its card shows: judged against welfare net of the survey's noise where BPS measured enough families
twice, dtsen.model.evaluate) are set beside its true errors, and the default model's likewise, with the
errors judged against the bare measurement beside them.

The cycle: then `dtsen model fit` (the cycle's fit_model, its card kept) and `dtsen model adopt` run,
and the world's last round (its candidate's drift audit blocks, as a changed model moves families: a
person's approval is given, as `dtsen approve` would): its version, ranked by the adopted model (the version's ranking_model
names it), is compared with that round's truth as published (recent measurements replacing
predictions), beside V as published (the default model), and the card's estimate beside the adopted
model's true errors over the new version.

Shrinkage: a region with fewer than 30 measurements. Every province (and kelurahan/desa cell) with
fewer than 30 measurements in the training frame is listed with the calibrated model's error there
beside a national-only fit's (design_for(..., regions=())). A world large enough for a fit has few
such regions, so the province with the fewest measurements is also thinned to --thin-to measurements
(the rest of its measurements dropped, seed fixed) and both models refitted: its families' errors
(mean error and RMSE of the predicted log expenditure, inclusion and exclusion at the national desil
1-5 cut) with regional terms vs national only.

The fitting at the 10M-person size: with --scale-rows N (0 skips; default 30,000, 1% of the ~3.0M
families of a generated 10M world) fit + cross_validate run on a synthetic N-row frame (rows of V's
population drawn with replacement, y = true welfare + N(0, 0.15), the generator's measurement noise) in
a child process, with its wall time and peak RSS. The warehouse queries of a fit (training frame,
national thresholds, impact) are measured by bench/model_fit_scale.py on a 1M world.

Appends the result (with the machine, bench/common.py emit) as one JSON line to --out and prints the
target table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from common import database_name, emit, generated_world, header, run_rounds, world_rounds
from sqlalchemy.engine import make_url

from dtsen.model.design import design_for
from dtsen.model.evaluate import CUTOFFS, desil, evaluate, poverty_lines, targeting_errors
from dtsen.model.fit import cross_validate, fit
from dtsen.model.training import summary, training_frame
from dtsen.rank.model import FEATURES, MEMBER_FEATURES, RankingModel, family_features_query, load_model
from dtsen.sqlfiles import statements
from dtsen.warehouse import engine
from dtsen_dev.evaluate import score_ranking

SMALL_REGION = 30


# -- the population of a version, with the truth ------------------------------------------------------


def population_frame(conn: psycopg.Connection, version: int, current: RankingModel) -> pd.DataFrame:
    """Every family of `version` as the version holds it: no_kk, kode_wilayah, every library feature
    (the training frame's columns) and the default model's score, by the ranking's feature SQL."""
    sql = statements("model/population.sql")
    (reference_date,) = conn.execute(sql["reference_date"], {"version": version}).fetchone()
    features = ",\n        ".join(f"({expr})::float8 AS {name}" for name, expr in FEATURES.items())
    query = family_features_query(
        f"f.no_kk, f.kode_wilayah, {features}, ({current.score_sql()})::float8 AS s_current",
        f"({sql['families']})",
        f"({sql['members']})",
        list(MEMBER_FEATURES),
    )
    cur = conn.execute(query, {"version": version, "reference_date": reference_date})
    frame = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    floats = [*FEATURES, "s_current"]
    frame[floats] = frame[floats].astype("float64")
    frame["no_kk"] = frame["no_kk"].astype("int64")
    frame["kode_wilayah"] = frame["kode_wilayah"].astype(str)
    return frame.sort_values("no_kk", ignore_index=True)


def with_truth(population: pd.DataFrame, truth_round: Path) -> pd.DataFrame:
    truth = pd.read_csv(truth_round / "welfare.csv.gz", dtype={"no_kk": "int64"})
    truth = truth.rename(columns={"log_pengeluaran_per_kapita": "truth"})
    return population.merge(truth, on="no_kk", how="inner", validate="one_to_one")


# -- errors against the truth -------------------------------------------------------------------------


def _share(numerator: np.ndarray, denominator: np.ndarray, weight: np.ndarray) -> float | None:
    total = weight[denominator].sum()
    return round(float(weight[numerator & denominator].sum() / total), 4) if total > 0 else None


def _block(score, truth, ranked, true_desil, weight) -> dict:
    block: dict = {"n": int(len(score))}
    for c in CUTOFFS:
        selected, poor = ranked <= c, true_desil <= c
        block[str(c)] = {
            "inclusion": _share(~poor, selected, weight),
            "exclusion": _share(~selected, poor, weight),
        }
    rho = pd.Series(score).corr(pd.Series(truth), method="spearman") if len(score) > 1 else np.nan
    block["spearman"] = None if pd.isna(rho) else round(float(rho), 4)
    error = np.asarray(score) - np.asarray(truth)
    block["mean_error"] = round(float(error.mean()), 4) if len(score) else None
    block["rmse"] = round(float(np.sqrt((error**2).mean())), 4) if len(score) else None
    return block


def against_truth(score: np.ndarray, pop: pd.DataFrame) -> dict:
    """`score` of every family of `pop` (aligned) cut into national desil by the ranking's rule and
    compared with the true desil: national and per-province blocks (national cut points)."""
    weight = pop["jumlah_anggota"].to_numpy(np.int64)
    keys = pop["no_kk"].to_numpy()
    truth = pop["truth"].to_numpy(float)
    ranked = desil(score, weight, keys)
    true_desil = desil(truth, weight, keys)
    w = weight.astype(float)
    result = {"national": _block(score, truth, ranked, true_desil, w), "per_province": {}}
    where = pop["kode_wilayah"].str[:2].to_numpy()
    for code in sorted(set(where)):
        at = where == code
        result["per_province"][code] = _block(score[at], truth[at], ranked[at], true_desil[at], w[at])
    return result


def region_errors(score: np.ndarray, pop: pd.DataFrame, at: np.ndarray) -> dict:
    """The errors of the families `at` (a boolean mask), cut at the national desil of `score`."""
    weight = pop["jumlah_anggota"].to_numpy(np.int64)
    keys = pop["no_kk"].to_numpy()
    truth = pop["truth"].to_numpy(float)
    ranked = desil(score, weight, keys)
    true_desil = desil(truth, weight, keys)
    return _block(score[at], truth[at], ranked[at], true_desil[at], weight[at].astype(float))


# -- the run -------------------------------------------------------------------------------------------


def as_published(score) -> dict:
    """A published version's ranking against the truth (dtsen_dev.evaluate.score_ranking), rounded."""
    return {
        "spearman": round(score.spearman, 4),
        "inclusion_error": round(score.inclusion_error, 4),
        "exclusion_error": round(score.exclusion_error, 4),
    }


def adopt_and_rank_next(world: Path, work: Path, name: str, next_round: str, before: dict) -> dict:
    """The cycle as a person runs it on this world: `dtsen model fit` (fit_model: the card kept in the
    warehouse), `dtsen model adopt` (recorded with who and why), the next round through its steps; the
    next version's published ranking against that round's truth, beside the version before it (ranked
    by the default model), and the card's cross-validated errors beside the adopted model's true ones
    there (its prediction alone, as above)."""
    from dtsen.model import adopt, store
    from dtsen.model.cycle import fit_model

    fitted = fit_model(by="bench")
    number = fitted["model_version"]
    url = engine.libpq_conninfo(os.environ["DTSEN_DATABASE_URL"])
    with psycopg.connect(url) as conn:
        adopt.adopt_from_cli(conn, number, "bench", "calibrated on the rounds' BPS measurements")
        conn.commit()
        card = store.card(conn, number)
        model = store.get(conn, number)
    [ran] = run_rounds(world, work, name, [next_round])
    approval = None
    if not ran["published"]:  # the model moved families: the drift audit asks a person, as it would
        from dtsen.publish.approval import pending_approval
        from dtsen.publish.audit import approve_version

        with psycopg.connect(url) as conn:
            waiting = pending_approval(conn, next_round)
            if waiting is None:
                raise RuntimeError(f"round {next_round} was not published and waits for no approval: {ran}")
            approval = {"version": waiting.version, "blocked_on": waiting.markdown().splitlines()[0]}
            approve_version(
                conn, waiting.version, "bench", "drift expected: the adopted model re-ranks every family"
            )
            conn.commit()
        [ran] = run_rounds(world, work, name, [next_round])
    truth_round = world / "truth" / next_round
    with psycopg.connect(url) as conn:
        (ranked_with,) = conn.execute(
            "SELECT ranking_model FROM publish.version WHERE version = %s", (ran["version"],)
        ).fetchone()
        published = score_ranking(conn, ran["version"], truth_round)
        # s_current: here the adopted model's score of every family of the new version
        pop = with_truth(population_frame(conn, ran["version"], model), truth_round)
        conn.rollback()
    true = against_truth(pop["s_current"].to_numpy(float), pop)
    estimate = card["errors"]["candidate"]["national"]["5"]
    return {
        "model_version": number,
        "sha256": model.sha256,
        "fit_seconds": fitted["seconds"],
        "round": ran,
        "drift_approved": approval,
        "version_ranked_with": ranked_with,
        "published_before": before,
        "published_after": as_published(published),
        "card_cv": estimate,
        "card_survey_noise": card["cv"].get("survey_noise"),
        "true": true["national"]["5"],
        "diff": {k: round(estimate[k] - true["national"]["5"][k], 4) for k in ("inclusion", "exclusion")},
    }


def cv_against_welfare(
    frame: pd.DataFrame, pop: pd.DataFrame, cv, card_errors: dict, final_score: np.ndarray
) -> dict:
    """Where the cross-validated estimate and the true error part: the card's fold predictions of the
    measured families, selected as on the card (each below its fold model's national threshold), but
    judged against their true welfare (poor: below the true welfare's national desil line over the
    whole population) instead of their measured expenditure (true welfare + the survey's noise); and the
    final model's true errors on the measured families alone (national cut over the population)."""
    truth = frame[["no_kk"]].merge(pop[["no_kk", "truth"]], on="no_kk", how="left")["truth"].to_numpy(float)
    known = ~np.isnan(truth)
    weight = frame["jumlah_anggota"].to_numpy(float)
    thresholds = card_errors["cv"]["thresholds"]
    fold_cut = {
        c: np.array([thresholds[f"fold_{f}"][str(c)] or np.inf for f in range(cv.folds)], dtype=float)[
            cv.fold
        ]
        for c in CUTOFFS
    }
    line = poverty_lines(
        pop["truth"].to_numpy(float), pop["jumlah_anggota"].to_numpy(np.int64), pop["no_kk"].to_numpy()
    )
    errors = targeting_errors(
        cv.prediction[known],
        {c: fold_cut[c][known] for c in CUTOFFS},
        truth[known],
        line,
        weight[known],
        frame["kode_wilayah"].str[:2].to_numpy()[known],
    )["national"]
    noise = frame["y"].to_numpy(float)[known] - truth[known]
    return {
        "cv_predictions_vs_true_welfare": {str(c): errors[str(c)] for c in CUTOFFS}
        | {"spearman": errors["spearman"], "n": errors["n"]},
        "measured_minus_true_welfare": {
            "mean": round(float(noise.mean()), 4),
            "sd": round(float(noise.std()), 4),
        },
        "measured_families_without_truth": int((~known).sum()),
        "final_model_on_measured_families_vs_true_welfare": region_errors(
            final_score, pop, pop["no_kk"].isin(frame["no_kk"]).to_numpy()
        ),
    }


def small_regions(frame: pd.DataFrame, pop: pd.DataFrame, scores: dict[str, np.ndarray]) -> list[dict]:
    """Provinces and province x kelurahan/desa cells with fewer than SMALL_REGION measurements."""
    found = []
    measured_province = frame["kode_wilayah"].str[:2]
    measured_urban = frame["perkotaan"].fillna(0).astype(int).astype(str)
    pop_province = pop["kode_wilayah"].str[:2]
    pop_urban = pop["perkotaan"].fillna(0).astype(int).astype(str)
    for code in sorted(set(pop_province)):
        cells = [("province", code, measured_province == code, pop_province == code)]
        for u, label in (("1", "kelurahan"), ("0", "desa")):
            cells.append(
                (
                    f"province x {label}",
                    f"{code}/{label}",
                    (measured_province == code) & (measured_urban == u),
                    (pop_province == code) & (pop_urban == u),
                )
            )
        for kind, label, measured, families in cells:
            n = int(measured.sum())
            if n < SMALL_REGION and families.any():
                at = families.to_numpy()
                found.append(
                    {
                        "region": kind,
                        "code": label,
                        "measurements": n,
                        "families": int(at.sum()),
                        **{name: region_errors(s, pop, at) for name, s in scores.items()},
                    }
                )
    return found


def thinned(frame: pd.DataFrame, pop: pd.DataFrame, current: RankingModel, keep: int, seed: int) -> dict:
    """The province with the fewest measurements thinned to `keep`: regional vs national-only fit."""
    measured_province = frame["kode_wilayah"].str[:2]
    counts = measured_province.value_counts()
    code = str(counts.idxmin())
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero((measured_province == code).to_numpy())
    dropped = rng.choice(rows, size=max(0, len(rows) - keep), replace=False)
    small = frame.drop(index=frame.index[dropped]).reset_index(drop=True)
    at = (pop["kode_wilayah"].str[:2] == code).to_numpy()
    result = {"province": code, "measurements_before": int(len(rows)), "measurements_kept": keep}
    for label, regions in (("regional", ("province", "urban")), ("national_only", ())):
        fitted = fit(small, design_for(current, small, regions))
        result[label] = region_errors(fitted.predict(pop), pop, at) | {
            "alpha": fitted.alpha,
            "region_scale": fitted.region_scale,
        }
    return result


def scale_timing(pop: pd.DataFrame, current: RankingModel, rows: int, work: Path) -> dict:
    """fit + cross_validate on a synthetic `rows`-row frame, in a child process (its own peak RSS)."""
    rng = np.random.default_rng(25)
    synthetic = pop.iloc[rng.integers(0, len(pop), size=rows)].reset_index(drop=True)
    synthetic["y"] = synthetic["truth"] + rng.normal(0.0, 0.15, size=rows)
    path = work / f"targeting-scale-{rows}.pkl"
    synthetic.to_pickle(path)
    child = subprocess.run(
        [sys.executable, __file__, "--scale-child", str(path)], capture_output=True, text=True, check=True
    )
    path.unlink()
    return json.loads(child.stdout.strip().splitlines()[-1])


def scale_child(path: Path) -> None:
    frame = pd.read_pickle(path)
    current = load_model()
    started = time.perf_counter()
    design = design_for(current, frame)
    fitted = fit(frame, design)
    fit_seconds = time.perf_counter() - started
    cross_validate(frame, design)
    total = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": len(frame),
                "villages": int(frame["kode_wilayah"].nunique()),
                "design_columns": int(fitted.pipeline.named_steps["ridge"].coef_.shape[0]),
                "fit_seconds": round(fit_seconds, 1),
                "fit_and_cross_validate_seconds": round(total, 1),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
        )
    )


def national5(errors: dict) -> tuple[float | None, float | None]:
    block = errors["national"]["5"]
    return block["inclusion"], block["exclusion"]


def table(result: dict) -> list[str]:
    m = result["models_against_truth"]
    cal, orc = national5(m["calibrated"]), national5(m["oracle"])
    cv = result["cross_validated_vs_true"]["calibrated"]
    lines = ["| measure | target | measured |", "|---|---|---|"]
    lines.append(
        "| calibrated model vs oracle, inclusion and exclusion error at desil 1-5 | each within 0.02 of "
        f"the oracle's | inclusion {cal[0]:.3f} vs {orc[0]:.3f} (diff {cal[0] - orc[0]:+.3f}), exclusion "
        f"{cal[1]:.3f} vs {orc[1]:.3f} (diff {cal[1] - orc[1]:+.3f}); default model {national5(m['default'])[0]:.3f}"
        f" / {national5(m['default'])[1]:.3f} |"
    )
    lines.append(
        "| cross-validated estimate vs the true error of the adopted model | within 0.02 | inclusion "
        f"{cv['cv']['inclusion']:.3f} vs {cv['true']['inclusion']:.3f} (diff {cv['diff']['inclusion']:+.3f}), "
        f"exclusion {cv['cv']['exclusion']:.3f} vs {cv['true']['exclusion']:.3f} "
        f"(diff {cv['diff']['exclusion']:+.3f}); {cv['survey_noise']['judged_against']}"
        + (
            f", survey noise sd {cv['survey_noise']['sd']:.3f} from {cv['survey_noise']['families_measured_twice']}"
            " families measured twice"
            if cv["survey_noise"]["sd"] is not None
            else ""
        )
        + f"; against the bare measurement {cv['against_measurement']['inclusion']:.3f} / "
        f"{cv['against_measurement']['exclusion']:.3f} |"
    )
    shrink = result["shrinkage"]
    t = shrink["thinned"]
    natural = shrink["regions_under_30"]
    natural_text = (
        "; ".join(
            f"{r['code']} (n={r['measurements']}): RMSE {r['calibrated']['rmse']:.3f} vs national-only "
            f"{r['national_only']['rmse']:.3f}"
            for r in natural
        )
        or "none in this world"
    )
    lines.append(
        "| a region with fewer than 30 measurements | within the national model's error | province "
        f"{t['province']} thinned {t['measurements_before']}->{t['measurements_kept']}: RMSE "
        f"{t['regional']['rmse']:.3f} vs national-only {t['national_only']['rmse']:.3f}, mean error "
        f"{t['regional']['mean_error']:+.3f} vs {t['national_only']['mean_error']:+.3f}, desil 1-5 incl/excl "
        f"{t['regional']['5']['inclusion']:.3f}/{t['regional']['5']['exclusion']:.3f} vs "
        f"{t['national_only']['5']['inclusion']:.3f}/{t['national_only']['5']['exclusion']:.3f}; natural "
        f"regions under 30: {natural_text} |"
    )
    cycle = result.get("adopted_and_ranked_next")
    if cycle:
        after, before = cycle["published_after"], cycle["published_before"]
        lines.append(
            f"| the cycle: fitted, adopted, the next round ranked by it | - | model {cycle['model_version']} "
            f"adopted; version {cycle['round']['version']} ranked with sha256 "
            f"{str(cycle['version_ranked_with'].get('sha256'))[:12]}: published desil 1-5 incl/excl "
            f"{after['inclusion_error']:.3f}/{after['exclusion_error']:.3f}, Spearman {after['spearman']:.3f} "
            f"(version before, default model: {before['inclusion_error']:.3f}/{before['exclusion_error']:.3f}, "
            f"{before['spearman']:.3f}); its card's estimate {cycle['card_cv']['inclusion']:.3f}/"
            f"{cycle['card_cv']['exclusion']:.3f} vs true there {cycle['true']['inclusion']:.3f}/"
            f"{cycle['true']['exclusion']:.3f} |"
        )
    scale = result.get("fitting_scale")
    if scale and "rows" in scale:
        lines.append(
            "| fitting at 10M persons with 1% measured | under 10 minutes here, peak RSS < 2 GiB | fit + "
            f"nested cross-validation on a synthetic {scale['rows']}-row frame (1% of a 10M world's families) "
            f"{scale['fit_and_cross_validate_seconds']:.0f} s, peak RSS {scale['peak_rss_mib']} MiB; the "
            "warehouse queries: bench/model_fit_scale.py |"
        )
    else:
        lines.append(
            "| fitting at 10M persons with 1% measured | under 10 minutes here, peak RSS < 2 GiB | not measured |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=120_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--regencies", type=int, default=12)
    parser.add_argument("--bps-share", type=float, default=0.03)
    parser.add_argument("--bps-panel", type=float, default=0.25)
    parser.add_argument("--thin-to", type=int, default=20)
    parser.add_argument("--scale-rows", type=int, default=30_000, help="0: skip the fitting at the 10M size")
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--reuse-database", action="store_true", help="the rounds already ran in this world's database"
    )
    parser.add_argument("--scale-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_child:
        scale_child(args.scale_child)
        return

    started = time.monotonic()
    name = f"targeting-regional-{args.persons}-r{args.rounds + 1}-bps{args.bps_share}-panel{args.bps_panel}"
    options = (
        "--relation",
        "regional",
        "--bps-share",
        str(args.bps_share),
        "--bps-panel",
        str(args.bps_panel),
    )
    # one round more than --rounds: the one the adopted model ranks
    world = generated_world(args.persons, args.rounds + 1, args.work, name, args.regencies, options)
    generated = json.loads((world / "summary.json").read_text())
    *before_fit, next_round = world_rounds(world)
    if args.reuse_database:  # the rounds ran before (e.g. the analysis is being rerun)
        server = make_url(engine.database_url())
        os.environ["DTSEN_DATABASE_URL"] = server.set(database=database_name(name)).render_as_string(
            hide_password=False
        )
        rounds = [{"reused_database": database_name(name)}]
    else:
        rounds = run_rounds(world, args.work, name, before_fit)
    rounds_seconds = time.monotonic() - started

    current = load_model()
    with psycopg.connect(engine.libpq_conninfo(os.environ["DTSEN_DATABASE_URL"])) as conn:
        version, round_id = conn.execute(
            "SELECT v.version, r.round_id FROM publish.current_version v JOIN ingest.round r USING (round_seq)"
        ).fetchone()
        truth_round = world / "truth" / round_id
        published = score_ranking(conn, version, truth_round)
        pop = with_truth(population_frame(conn, version, current), truth_round)

        t = time.monotonic()
        frame = training_frame(conn, current)
        design = design_for(current, frame)
        calibrated = fit(frame, design)
        cv = cross_validate(frame, design)
        card_errors = evaluate(conn, frame, current, cv)
        calibrate_seconds = time.monotonic() - t
        conn.rollback()

    t = time.monotonic()
    national = fit(frame, design_for(current, frame, ()))
    truth_fit = pop.assign(y=pop["truth"])
    oracle = fit(truth_fit, design_for(current, truth_fit))
    other_seconds = time.monotonic() - t

    scores = {
        "default": pop["s_current"].to_numpy(float),
        "calibrated": calibrated.predict(pop),
        "oracle": oracle.predict(pop),
        "national_only": national.predict(pop),
    }
    measured = {name: against_truth(s, pop) for name, s in scores.items()}
    diff = {}
    for model, card in (("calibrated", "candidate"), ("default", "current")):
        estimate = card_errors[card]["national"]["5"]
        true = measured[model]["national"]["5"]
        diff[model] = {
            "cv": estimate,
            "cv_spearman": card_errors[card]["national"]["spearman"],
            "true": true,
            "true_spearman": measured[model]["national"]["spearman"],
            "diff": {k: round(estimate[k] - true[k], 4) for k in ("inclusion", "exclusion")},
            "against_measurement": card_errors["cv"]["against_measurement"][card]["5"],
            "survey_noise": card_errors["cv"]["survey_noise"],
            "cv_per_province": {
                p: b["5"] | {"n": b["n"]} for p, b in card_errors[card]["per_province"].items()
            },
        }
    diff["calibrated"]["decomposition"] = cv_against_welfare(
        frame, pop, cv, card_errors, scores["calibrated"]
    )
    t = time.monotonic()
    shrinkage = {
        "regions_under_30": small_regions(
            frame, pop, {"calibrated": scores["calibrated"], "national_only": scores["national_only"]}
        ),
        "thinned": thinned(frame, pop, current, args.thin_to, seed=25),
    }
    shrink_seconds = time.monotonic() - t
    cycle = None
    if not args.reuse_database:
        cycle = adopt_and_rank_next(world, args.work, name, next_round, as_published(published))
    result = {
        **header("targeting", 25),
        "world": {
            "persons": args.persons,
            "rounds": args.rounds + 1,
            "rounds_before_the_fit": args.rounds,
            "regencies": args.regencies,
            "relation": "regional",
            "bps_share_per_round": args.bps_share,
            "bps_panel": args.bps_panel,
            "seed": 7,
            "generator_summary_config": generated.get("config"),
        },
        "rounds": rounds,
        "version": version,
        "truth_round": round_id,
        "population_families": len(pop),
        "training": summary(frame),
        "calibrated_penalty": calibrated.penalty(),
        "oracle_penalty": {"alpha": oracle.alpha, "region_scale": oracle.region_scale, "families": len(pop)},
        "note": "errors against the truth: each model's prediction alone (no BPS override) over every family "
        "of the last published version, national person-weighted desil by the ranking's rule on both sides; "
        "per-province blocks use the national cut. The oracle is fitted on the true welfare of every family "
        "and judged in sample (an upper bound for this pipeline). published_ranking = the version as "
        "published (recent BPS measurements replace predictions; the default model ranked every round).",
        "models_against_truth": measured,
        "published_ranking": as_published(published),
        "cross_validated_vs_true": diff,
        "adopted_and_ranked_next": cycle,
        "card_errors": card_errors,
        "shrinkage": shrinkage,
        "seconds": {
            "generate_and_rounds": round(rounds_seconds, 1),
            "training_fit_cv_evaluate": round(calibrate_seconds, 1),
            "national_only_and_oracle_fits": round(other_seconds, 1),
            "shrinkage": round(shrink_seconds, 1),
        },
    }
    if args.scale_rows:
        result["fitting_scale"] = {
            "label": "the fitting part at the 10M/1% size: fit + cross_validate (nested, defaults) on a "
            "synthetic frame of rows drawn from this world's population, in a child process",
            **scale_timing(pop, current, args.scale_rows, args.work),
        }
    result["table"] = table(result)
    emit(json.loads(json.dumps(result, default=str)), args.out)
    print("\n".join(result["table"]))


if __name__ == "__main__":
    main()
