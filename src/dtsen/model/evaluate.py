"""How well a model targets, measured honestly: cross-validated targeting errors on the measured
families, the candidate model's beside the current model's on the same families and folds.

For each measured family, the prediction of the model fitted without its fold (folds by village,
src/dtsen/model/fit.py `cross_validate`) is compared with the national cut point of that fold model:
the desil threshold its scores give over the whole population of a version (the ranking's own rule:
one person-weighted national ordering, a recent BPS measurement overriding the prediction), not the
fold's own median. The current model is judged the same way, by its own national thresholds. A family
is poor at desil d when its log welfare is below the person-weighted d/10 quantile of the welfare of
all measured families.

A measurement is welfare plus the survey's noise, and judged against the measurement a model looks
worse than it is (a family whose measurement strays across the line counts as an error). Where BPS
measured enough families twice in the window (at least MIN_PAIRS), the noise is known (the variance of
two measurements' difference is twice its own), and each family's welfare is drawn DRAWS times from
what its measurement and its prediction together say of it (normal: welfare = prediction + bias + a
model error of the variance the residuals leave after the noise; measurement = welfare + noise); the
errors are the mean over the draws, each draw with its own poverty lines. Otherwise welfare is taken to
be the measurement, and the card says so. Both are on the card.

- inclusion error at d: of the individuals (families weighted by their members) a model selects
  (ranks into desil 1..d), the share that is not poor;
- exclusion error at d: of the poor individuals, the share the model does not select;
- Spearman's rank correlation of the prediction with welfare (families).

Nationally and per province (with n, the families). The population is scored in the warehouse in one
pass (every fold model's `score_sql()` in one feature query); only its thresholds reach Python."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg

from dtsen.errors import DataError
from dtsen.model.fit import CrossValidated
from dtsen.model.training import current_version, province
from dtsen.publish.candidate import ranked_score_sql
from dtsen.rank.model import RankingModel, family_features_query
from dtsen.sqlfiles import statements

SQL = "model/population.sql"
THRESHOLDS_SQL = "model/thresholds.sql"
CUTOFFS = (3, 4, 5)
MIN_PAIRS = 30  # families measured twice: fewer tell the survey's noise too loosely to correct for it
DRAWS = 100  # draws of the measured families' welfare: the mean's own spread is under 0.001
SEED = 25


# -- the national cut points --------------------------------------------------------------------------


def population_thresholds(
    conn: psycopg.Connection, models: Mapping[str, RankingModel], version: int
) -> dict[str, dict[int, float]]:
    """Each model's national desil thresholds over `version`'s population: {name: {d: the lowest
    score ranked above desil d}} for d in CUTOFFS. One feature query scores every family with every
    model (the score the ranking would give it), kept in the warehouse; one ordering per model."""
    names = list(models)
    sql = statements(SQL)
    (reference_date,) = conn.execute(sql["reference_date"], {"version": version}).fetchone() or (None,)
    if reference_date is None:
        raise DataError(f"there is no version {version} to take the national thresholds from")
    scores = ",\n        ".join(
        f"{ranked_score_sql(m, f'({m.score_sql()})::float8')} AS r_{i}" for i, m in enumerate(models.values())
    )
    members = sorted(set().union(*(m.member_features_used() for m in models.values())))
    query = family_features_query(
        f"f.no_kk, a.jumlah_anggota AS w,\n        {scores}",
        f"({sql['families']})",
        f"({sql['members']})",
        members,
    )
    params = {"version": version, "reference_date": reference_date}
    conn.execute(sql["reset"])
    conn.execute(f"CREATE TEMP TABLE model_population ON COMMIT DROP AS {query}", params)
    thresholds: dict[str, dict[int, float]] = {}
    for i, name in enumerate(names):
        rows = conn.execute(
            statements(THRESHOLDS_SQL, score=f"r_{i}")["thresholds"], {"cutoffs": list(CUTOFFS)}
        ).fetchall()
        thresholds[name] = {int(d): (float(t) if t is not None else float("inf")) for d, t in rows}
    conn.execute(sql["reset"])
    return thresholds


def desil(values: np.ndarray, weight: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
    """Each family's desil by the ranking's rule (publish/candidate.sql assign_desil): ordered by
    value (ties by key), desil = 1 + floor(10 * individuals ranked before / all individuals), at most
    10. Exact integer arithmetic, as the SQL's numeric."""
    values = np.asarray(values, dtype=float)
    weight = np.asarray(weight, dtype=np.int64)
    keys = np.arange(len(values)) if keys is None else np.asarray(keys)
    order = np.lexsort((keys, values))
    before = np.cumsum(weight[order]) - weight[order]
    total = int(weight.sum())
    result = np.empty(len(values), dtype=np.int64)
    result[order] = np.minimum(10, 1 + (10 * before) // max(total, 1))
    return result


def poverty_lines(
    y: np.ndarray, weight: np.ndarray, keys: np.ndarray | None = None, cutoffs=CUTOFFS
) -> dict[int, float]:
    """The person-weighted d/10 quantiles of y, by the same rule: the lowest y ranked above desil d.
    A family is poor at d when its y is below it."""
    y = np.asarray(y, dtype=float)
    d = desil(y, weight, keys)
    return {c: float(y[d > c].min()) if (d > c).any() else float("inf") for c in cutoffs}


# -- the errors ---------------------------------------------------------------------------------------


def _share(numerator: np.ndarray, denominator: np.ndarray, weight: np.ndarray) -> float | None:
    total = float(weight[denominator].sum())
    return float(weight[numerator & denominator].sum()) / total if total > 0 else None


def _spearman(score: np.ndarray, y: np.ndarray) -> float | None:
    if len(score) < 2:
        return None
    value = pd.Series(score).corr(pd.Series(y), method="spearman")
    return None if pd.isna(value) else float(value)


def _errors(score, cut, y, line, weight) -> dict:
    block: dict = {}
    for c in line:
        selected = score < cut[c]
        poor = y < line[c]
        block[str(c)] = {
            "inclusion": _share(~poor, selected, weight),
            "exclusion": _share(~selected, poor, weight),
        }
    block["spearman"] = _spearman(score, y)
    block["n"] = int(len(score))
    return block


def targeting_errors(
    score: np.ndarray,
    cut: Mapping[int, np.ndarray | float],
    y: np.ndarray,
    line: Mapping[int, float],
    weight: np.ndarray,
    province_of: np.ndarray,
) -> dict:
    """{"national": errors, "per_province": {code: errors}}, errors = {"3": {"inclusion", "exclusion"},
    "4": ..., "5": ..., "spearman", "n"}: a family is selected at d when `score` < `cut[d]` (one cut
    for all, or one per family: its fold model's), poor when `y` < `line[d]`; shares weighted by
    `weight` (individuals). A share with nothing to divide by is None."""
    score = np.asarray(score, dtype=float)
    y = np.asarray(y, dtype=float)
    weight = np.asarray(weight, dtype=float)
    province_of = np.asarray(province_of).astype(str)
    cuts = {c: np.broadcast_to(np.asarray(cut[c], dtype=float), score.shape) for c in line}
    result = {"national": _errors(score, cuts, y, line, weight), "per_province": {}}
    for code in sorted(set(province_of)):
        at = province_of == code
        result["per_province"][code] = _errors(
            score[at], {c: cuts[c][at] for c in cuts}, y[at], line, weight[at]
        )
    return result


def _mean_errors(blocks: list):
    """The mean of `_errors` blocks (one per draw), value by value: n (an int) stays, a share any draw
    could not give is None."""
    first = blocks[0]
    if isinstance(first, dict):
        return {k: _mean_errors([b[k] for b in blocks]) for k in first}
    if any(b is None for b in blocks):
        return None
    return first if isinstance(first, int) else float(np.mean(blocks))


# -- the survey's noise -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SurveyNoise:
    """The survey's noise on log expenditure (sd; None: not known) and the families measured twice
    it was told from."""

    sd: float | None
    pairs: int

    @classmethod
    def of(cls, frame: pd.DataFrame, min_pairs: int = MIN_PAIRS) -> SurveyNoise:
        repeated = frame.attrs.get("repeated") or {}
        pairs, variance = int(repeated.get("pairs") or 0), repeated.get("variance")
        if pairs < min_pairs or variance is None:
            return cls(None, pairs)
        return cls(math.sqrt(variance / 2), pairs)

    def describe(self) -> dict:
        return {
            "sd": self.sd,
            "families_measured_twice": self.pairs,
            "judged_against": "welfare (the measurement net of the survey's noise)"
            if self.sd is not None
            else f"the measurement (fewer than {MIN_PAIRS} families measured twice: the noise is not known)",
            "draws": DRAWS if self.sd is not None else 0,
        }


def welfare_draws(
    prediction: np.ndarray, y: np.ndarray, noise_sd: float, *, draws: int = DRAWS, seed: int = SEED
) -> np.ndarray:
    """(draws, families): each measured family's log welfare drawn from what its measurement `y` and
    the model's out-of-fold `prediction` say of it, with y = welfare + noise (sd `noise_sd`) and
    welfare = prediction + bias + model error (normal, of the residuals' variance less the noise's):
    mean prediction + bias + k (y - prediction - bias), variance k noise_sd^2, k = the model error's
    share of the residuals' variance."""
    residual = np.asarray(y, dtype=float) - np.asarray(prediction, dtype=float)
    bias = float(residual.mean())
    noise = noise_sd**2
    model_error = max(float(residual.var(ddof=1)) - noise, 0.0) if len(residual) > 1 else 0.0
    k = model_error / (model_error + noise) if model_error + noise > 0 else 0.0
    mean = prediction + bias + k * (residual - bias)
    rng = np.random.default_rng(seed)
    return mean + math.sqrt(k * noise) * rng.standard_normal((draws, len(residual)))


def errors_against_welfare(
    score: np.ndarray,
    cut: Mapping[int, np.ndarray | float],
    welfare: np.ndarray,
    weight: np.ndarray,
    keys: np.ndarray,
    province_of: np.ndarray,
) -> dict:
    """`targeting_errors` averaged over draws of welfare (rows of `welfare`), each draw with its own
    poverty lines (the person-weighted quantiles of that draw)."""
    counts = np.asarray(weight, dtype=np.int64)
    return _mean_errors(
        [
            targeting_errors(score, cut, draw, poverty_lines(draw, counts, keys), weight, province_of)
            for draw in welfare
        ]
    )


def _finite(values: Mapping[int, float]) -> dict[str, float | None]:
    return {str(c): (v if np.isfinite(v) else None) for c, v in values.items()}


# -- the whole evaluation -----------------------------------------------------------------------------


def fold_models(frame: pd.DataFrame, current: RankingModel, cv: CrossValidated) -> list[RankingModel]:
    """Each fold's fitted pipeline as a ranking model (its document: what the warehouse scores)."""
    from dtsen.rank.model import parse_model

    return [
        parse_model(model.document(frame[cv.fold != f], current, version=f"cv-fold-{f}", training={}))
        for f, model in enumerate(cv.models)
    ]


def evaluate(
    conn: psycopg.Connection,
    frame: pd.DataFrame,
    current: RankingModel,
    cv: CrossValidated,
    *,
    version: int | None = None,
) -> dict:
    """The card's cross-validated errors: {"candidate": {"national", "per_province"}, "current": {...},
    "cv": {"folds", "grouped_by", ...}}. The candidate's score of a family is its fold model's
    prediction, cut at that fold model's national thresholds over `version`'s population (default: the
    frame's as-of version, else the current published one); the current model's is `s_current`, cut
    at its own. Runs in the caller's transaction."""
    if version is None:
        version = frame.attrs.get("as_of_version") or current_version(conn)
    models = {"current": current} | {f"fold_{f}": m for f, m in enumerate(fold_models(frame, current, cv))}
    thresholds = population_thresholds(conn, models, version)
    weight = frame["jumlah_anggota"].to_numpy(float)
    counts = frame["jumlah_anggota"].to_numpy(np.int64)
    keys = frame["no_kk"].to_numpy()
    y = frame["y"].to_numpy(float)
    line = poverty_lines(y, counts, keys)
    where = province(frame).to_numpy()
    fold_cut = {c: np.array([thresholds[f"fold_{f}"][c] for f in range(cv.folds)])[cv.fold] for c in CUTOFFS}
    scored = {
        "candidate": (cv.prediction, fold_cut),
        "current": (frame["s_current"].to_numpy(float), thresholds["current"]),
    }
    measured = {
        name: targeting_errors(score, cut, y, line, weight, where) for name, (score, cut) in scored.items()
    }
    noise = SurveyNoise.of(frame)
    if noise.sd is None:
        judged = measured
    else:
        judged = {
            name: errors_against_welfare(score, cut, welfare_draws(score, y, noise.sd), weight, keys, where)
            for name, (score, cut) in scored.items()
        }
    return judged | {
        "cv": {
            "folds": cv.folds,
            "grouped_by": "village",
            "seed": cv.seed,
            "version": version,
            "thresholds": {name: _finite(cut) for name, cut in thresholds.items()},
            "poverty_lines": _finite(line),
            "survey_noise": noise.describe(),
            "against_measurement": {name: errors["national"] for name, errors in measured.items()},
        },
    }
