"""The default PMT model's fit (dtsen_dev.rank_fit): least squares of welfare on the library's features,
by scikit-learn, written as a model document the ranking loads."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dtsen_dev.rank_fit import CATEGORY_FEATURES, LINEAR_FEATURES, fit_model


def test_fit_recovers_the_coefficients_the_welfare_was_made_with() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    frame = pd.DataFrame({f: rng.integers(1, 4, n).astype(float) for f in CATEGORY_FEATURES})
    frame[CATEGORY_FEATURES[0]] = [1.0, 1.0, 2.0, 3.0] * (n // 4)  # level 1 most common: the reference
    for feature in LINEAR_FEATURES:
        frame[feature] = rng.normal(size=n)
    frame.loc[:9, LINEAR_FEATURES[0]] = np.nan  # a missing value takes the feature's median
    welfare = (
        12.0
        + 0.3 * (frame[CATEGORY_FEATURES[0]] == 3)
        + 0.2 * frame[LINEAR_FEATURES[0]].fillna(frame[LINEAR_FEATURES[0]].median())
    )
    frame["log_pengeluaran_per_kapita"] = welfare - 0.05 * frame[LINEAR_FEATURES[1]]

    document = fit_model(frame, name="t", version="1", source="test", ridge=1e-9)

    terms = {t["feature"]: t for t in document["terms"]}
    assert document["intercept"] == 12.0
    assert terms[CATEGORY_FEATURES[0]]["coefficients"] == {"2": 0.0, "3": 0.3}
    assert terms[LINEAR_FEATURES[0]]["coefficient"] == 0.2
    assert terms[LINEAR_FEATURES[1]]["coefficient"] == -0.05
    assert terms[LINEAR_FEATURES[2]]["coefficient"] == 0.0
    assert document["fitted_on"] == {"source": "test", "families": n, "r2": 1.0}
