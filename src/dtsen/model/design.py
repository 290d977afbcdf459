"""What a calibrated welfare model is made of, as a scikit-learn pipeline, and how the fitted pipeline
is written as a ranking model document (config/ranking/*.json's format, extended additively).

The model uses the current model's proxies (its terms, each of the same type) plus regional terms:
province and urban/rural, optionally regency. In the pipeline:

- a category term is one-hot over the codes seen in training; a NULL or unseen code is all zeros,
  exactly as `Term.sql` gives 0 to a code the document does not list;
- a linear term is median-imputed (the median is the term's `default`) and standardised, so the
  penalty treats every proxy alike (the scaling is folded back into the coefficient and intercept);
- the regional block is one-hot times `region_scale`: the ridge penalty on a regional offset is
  alpha / region_scale**2, so a region with few measurements stays close to the national model (its
  offset shrinks toward 0), a regency's toward its province's.

`to_document` turns the fitted pipeline into the document; its `score_sql()` computes what
`pipeline.predict` does (the tests hold them equal within 1e-6)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from dtsen.errors import DataError
from dtsen.rank.model import RankingModel, parse_model

# regional terms by the name a document's "regions" lists them with
REGION_FEATURES: dict[str, str] = {
    "province": "kode_provinsi",
    "urban": "perkotaan",
    "regency": "kode_kabupaten",
}
DEFAULT_REGIONS = ("province", "urban")
TARGET = "log monthly per-capita expenditure (rupiah)"


class DesignError(DataError):
    pass


class Scaled(TransformerMixin, BaseEstimator):
    """Multiplies its input by `factor` (the regional block's scale, a grid-searched parameter)."""

    def __init__(self, factor: float = 1.0):
        self.factor = factor

    def fit(self, x, y=None):
        self.n_features_in_ = np.shape(x)[1]
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def transform(self, x):
        return np.asarray(x, dtype=float) * self.factor

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features, dtype=object)


@dataclass(frozen=True)
class Design:
    """The model's terms: category and linear proxies (the current model's), the regional terms, and
    the codes each one-hot term knows (those seen in the training frame)."""

    categories: tuple[str, ...]
    linear: tuple[str, ...]
    regions: tuple[str, ...]  # names, keys of REGION_FEATURES
    codes: dict[str, tuple[float, ...]]  # category and regional feature -> its known codes, sorted

    @property
    def region_features(self) -> tuple[str, ...]:
        return tuple(REGION_FEATURES[r] for r in self.regions)

    @property
    def columns(self) -> list[str]:
        return [*self.categories, *self.linear, *self.region_features]

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The pipeline's input: the design's columns of `frame`, in order, as floats (NULL = NaN).
        An array, not the frame: scikit-learn's checks of a frame cost more than these small fits."""
        return frame[self.columns].to_numpy(dtype=np.float64, na_value=np.nan)


def design_for(
    current: RankingModel, frame: pd.DataFrame, regions: tuple[str, ...] | list[str] = DEFAULT_REGIONS
) -> Design:
    """The current model's proxies (regional terms it has aside) with `regions`, and every code seen
    in `frame` of each one-hot term."""
    unknown = [r for r in regions if r not in REGION_FEATURES]
    if unknown:
        raise DesignError(
            f"unknown regional term(s) {', '.join(unknown)}; known: {', '.join(REGION_FEATURES)}"
        )
    regional = set(REGION_FEATURES.values())
    categories = tuple(t.feature for t in current.terms if t.type == "category" and t.feature not in regional)
    linear = tuple(t.feature for t in current.terms if t.type == "linear" and t.feature not in regional)
    ordered = tuple(r for r in REGION_FEATURES if r in regions)
    codes = {
        feature: tuple(float(c) for c in sorted(frame[feature].dropna().unique()))
        for feature in (*categories, *(REGION_FEATURES[r] for r in ordered))
    }
    return Design(categories, linear, ordered, codes)


def make_pipeline(design: Design, *, alpha: float = 1.0, region_scale: float = 1.0) -> Pipeline:
    """ColumnTransformer (one-hot categories, imputed and standardised linear proxies, scaled regional
    one-hot) -> Ridge, over `Design.matrix` (columns by position). Dense: the design is at most a few
    hundred columns."""
    position = {name: i for i, name in enumerate(design.columns)}

    def at(features: tuple[str, ...]) -> list[int]:
        return [position[f] for f in features]

    def onehot(features: tuple[str, ...]) -> OneHotEncoder:
        return OneHotEncoder(
            categories=[list(design.codes[f]) for f in features],
            handle_unknown="ignore",
            sparse_output=False,
            dtype=np.float64,
        )

    blocks = []
    if design.categories:
        blocks.append(("category", onehot(design.categories), at(design.categories)))
    if design.linear:
        linear = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("standardise", StandardScaler()),
            ]
        )
        blocks.append(("linear", linear, at(design.linear)))
    if design.regions:
        region = Pipeline([("onehot", onehot(design.region_features)), ("scale", Scaled(region_scale))])
        blocks.append(("region", region, at(design.region_features)))
    if not blocks:
        raise DesignError("the model has no terms")
    columns = ColumnTransformer(blocks, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("columns", columns), ("ridge", Ridge(alpha=alpha))])


def _category_term(
    feature: str, codes: tuple[float, ...], coefficients: np.ndarray, group: str | None
) -> dict:
    term: dict = {
        "feature": feature,
        "type": "category",
        "coefficients": {str(int(code)): float(c) for code, c in zip(codes, coefficients, strict=True)},
    }
    if group:
        term["group"] = group
    return term


def to_document(
    pipeline: Pipeline,
    design: Design,
    frame: pd.DataFrame,
    current: RankingModel,
    *,
    version: str,
    training: dict | None = None,
    penalty: dict | None = None,
    name: str | None = None,
) -> dict:
    """The fitted pipeline as a ranking model document: intercept and terms (category: a coefficient
    per code; linear: coefficient and default), each term's mean contribution over `frame` (the
    families it was fitted on), name, version, the current model's BPS measurement age, and the
    additive keys "training", "penalty" and "regions"."""
    columns: ColumnTransformer = pipeline.named_steps["columns"]
    ridge: Ridge = pipeline.named_steps["ridge"]
    beta = np.asarray(ridge.coef_, dtype=float)
    intercept = float(ridge.intercept_)
    slices = columns.output_indices_
    terms: dict[str, dict] = {}

    if design.categories:
        at = slices["category"].start
        for feature in design.categories:
            n = len(design.codes[feature])
            terms[feature] = _category_term(feature, design.codes[feature], beta[at : at + n], None)
            at += n
    if design.linear:
        linear = columns.named_transformers_["linear"]
        medians = linear.named_steps["impute"].statistics_
        scaler = linear.named_steps["standardise"]
        coefficients = beta[slices["linear"]] / scaler.scale_
        intercept -= float(np.sum(coefficients * scaler.mean_))
        for feature, c, median in zip(design.linear, coefficients, medians, strict=True):
            terms[feature] = {
                "feature": feature,
                "type": "linear",
                "coefficient": float(c),
                "default": float(median),
            }
    if design.regions:
        factor = float(columns.named_transformers_["region"].named_steps["scale"].factor)
        at = slices["region"].start
        for feature in design.region_features:
            n = len(design.codes[feature])
            terms[feature] = _category_term(
                feature, design.codes[feature], beta[at : at + n] * factor, "region"
            )
            at += n

    for term in terms.values():
        term["mean_contribution"] = _mean_contribution(term, frame[term["feature"]])
    order = [t.feature for t in current.terms if t.feature in terms] + list(design.region_features)
    document = {
        "name": name or current.name,
        "version": str(version),
        "target": current.document.get("target", TARGET),
        "bps_measurement_max_age_months": current.bps_max_age_months,
        "intercept": intercept,
        "terms": [terms[f] for f in dict.fromkeys(order)],
        "training": training or {},
        "penalty": penalty or {},
        "regions": list(design.regions),
    }
    for value in _numbers(document):
        if not math.isfinite(value):
            raise DesignError("the fitted model has a coefficient that is not a finite number")
    parse_model(document)  # what is written must load
    return document


def _mean_contribution(term: dict, values: pd.Series) -> float:
    if term["type"] == "category":
        lookup = {float(code): c for code, c in term["coefficients"].items()}
        return float(values.map(lookup).fillna(0.0).mean()) if len(values) else 0.0
    filled = values.fillna(term["default"])
    return float(term["coefficient"] * filled.mean()) if len(values) else 0.0


def _numbers(value: object):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, float):
        yield value


def library_version() -> str:
    return f"scikit-learn {sklearn.__version__}"
