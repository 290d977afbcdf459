"""Fitting a calibrated welfare model: ridge regression of log per-capita expenditure on the design's
terms (src/dtsen/model/design.py), its penalty and regional scale chosen by cross-validation with
folds by village (scikit-learn's GridSearchCV over GroupKFold grouped by the 10-digit village code),
so that neighbours, who share what the proxies do not show, never sit on both sides of a fold.

`cross_validate` is the honest estimate of how the fitting procedure predicts a family it has not
seen: outer folds by village, and in each the whole fit (penalty search included) on the other folds
only (nested cross-validation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from dtsen.errors import DataError
from dtsen.model import design as design_module
from dtsen.model.design import Design, make_pipeline, to_document
from dtsen.rank.model import RankingModel

ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 3, 11))
# the regional block's penalty is alpha / scale**2: down to 100 times the proxies', so that where the
# measurements say regions differ little, a region's offset is pulled to the national model
REGION_SCALES: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0)
DEFAULT_FOLDS = 5
DEFAULT_SEED = 25
MIN_FAMILIES = 50
THREADS = 1  # BLAS threads: the fits are small; more threads only contend (ten times slower with 2)


class FitError(DataError):
    pass


@dataclass
class Fitted:
    """A fitted pipeline and how its penalty was chosen."""

    pipeline: Pipeline
    design: Design
    alpha: float
    region_scale: float | None  # None: no regional terms
    folds: int
    seed: int
    cv_mse: float  # the chosen parameters' mean squared error over the inner folds
    alphas: tuple[float, ...] = ALPHAS  # the grid searched
    region_scales: tuple[float, ...] = REGION_SCALES

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        with threadpool_limits(limits=THREADS):
            return self.pipeline.predict(self.design.matrix(frame))

    def penalty(self) -> dict:
        """The document's "penalty" block."""
        return {
            "method": "ridge",
            "alpha": self.alpha,
            "region_scale": self.region_scale,
            "cv": f"GroupKFold({self.folds}) by village (kode_wilayah), shuffled, seed {self.seed}; "
            "grid search of alpha and region_scale on mean squared error",
            "cv_mse": self.cv_mse,
            "alphas": list(self.alphas),
            "region_scales": list(self.region_scales) if self.region_scale is not None else [],
            "seed": self.seed,
            "library": design_module.library_version(),
        }

    def document(self, frame: pd.DataFrame, current: RankingModel, *, version: str, training: dict) -> dict:
        return to_document(
            self.pipeline,
            self.design,
            frame,
            current,
            version=version,
            training=training,
            penalty=self.penalty(),
        )


def village(frame: pd.DataFrame) -> np.ndarray:
    """Each family's group: its 10-digit village code."""
    return frame["kode_wilayah"].astype(str).str[:10].to_numpy()


def _splitter(frame: pd.DataFrame, folds: int, seed: int, what: str) -> GroupKFold:
    villages = len(np.unique(village(frame)))
    if folds < 2:
        raise FitError(f"cross-validation needs at least 2 folds, not {folds}")
    if villages < folds:
        raise FitError(f"{what}: {villages} villages cannot be split into {folds} folds by village")
    return GroupKFold(n_splits=folds, shuffle=True, random_state=seed)


def fit(
    frame: pd.DataFrame,
    design: Design,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = DEFAULT_SEED,
    alphas: tuple[float, ...] = ALPHAS,
    region_scales: tuple[float, ...] = REGION_SCALES,
    min_families: int = MIN_FAMILIES,
) -> Fitted:
    """The pipeline refitted on all of `frame` with the alpha (and region scale) of least mean squared
    error over `folds` folds by village."""
    if len(frame) < min_families:
        raise FitError(f"{len(frame)} measured families are too few to fit a model (at least {min_families})")
    splitter = _splitter(frame, folds, seed, "the training data")
    grid: dict[str, list[float]] = {"ridge__alpha": list(alphas)}
    if design.regions:
        grid["columns__region__scale__factor"] = list(region_scales)
    search = GridSearchCV(
        make_pipeline(design), grid, cv=splitter, scoring="neg_mean_squared_error", refit=True
    )
    with threadpool_limits(limits=THREADS):
        search.fit(design.matrix(frame), frame["y"].to_numpy(float), groups=village(frame))
    best = search.best_params_
    return Fitted(
        pipeline=search.best_estimator_,
        design=design,
        alpha=float(best["ridge__alpha"]),
        region_scale=float(best["columns__region__scale__factor"]) if design.regions else None,
        folds=folds,
        seed=seed,
        cv_mse=float(-search.best_score_),
        alphas=tuple(float(a) for a in alphas),
        region_scales=tuple(float(r) for r in region_scales),
    )


@dataclass
class CrossValidated:
    """The outer folds: each family's fold (`fold`, aligned with the frame's rows), its prediction by
    the model fitted without its fold (`prediction`), and the fold models (`models[f]`)."""

    fold: np.ndarray
    prediction: np.ndarray
    models: list[Fitted]
    folds: int
    seed: int


def outer_folds(frame: pd.DataFrame, folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Each family's outer fold, 0..folds-1, by village (a village's families share a fold)."""
    fold = np.full(len(frame), -1, dtype=int)
    for f, (_, test) in enumerate(
        _splitter(frame, folds, seed, "the measured families").split(frame, groups=village(frame))
    ):
        fold[test] = f
    return fold


def cross_validate(
    frame: pd.DataFrame,
    design: Design,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = DEFAULT_SEED,
    alphas: tuple[float, ...] = ALPHAS,
    region_scales: tuple[float, ...] = REGION_SCALES,
) -> CrossValidated:
    """Nested cross-validation: for each outer fold (by village), `fit` (its own penalty search by
    village) on the other folds, and its predictions of the fold's families."""
    fold = outer_folds(frame, folds, seed)
    prediction = np.full(len(frame), np.nan)
    models = []
    for f in range(folds):
        train = frame[fold != f]
        model = fit(
            train,
            design,
            folds=min(folds, train["kode_wilayah"].nunique()),
            seed=seed,
            alphas=alphas,
            region_scales=region_scales,
            min_families=1,
        )
        prediction[fold == f] = model.predict(frame[fold == f])
        models.append(model)
    return CrossValidated(fold, prediction, models, folds, seed)
