"""Fit the default PMT model's coefficients on a generated world (where welfare is known).

BPS's real PMT coefficients are not public (../shared/domain.md). The project's default model is
therefore fitted by least squares on a synthetic world from the generator, whose hidden welfare is
the target; a deployment refits the same terms on Susenas microdata and ships a new model version.
Features are computed by the same SQL the ranking uses (`family_features_query`), so the fitted
coefficients mean exactly what the ranking applies.

    dtsen-dev rank-fit --world /tmp/w --round 2026-Q1 --out config/ranking/pmt-v1.json
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from sklearn.linear_model import Ridge

from dtsen.domain.codes import ASSET_FIELDS
from dtsen.rank.model import FEATURES, MEMBER_FEATURES, family_features_query, parse_model
from dtsen_dev.evaluate import copy_truth_csv

CATEGORY_FEATURES = (
    "status_kepemilikan_rumah",
    "jenis_lantai",
    "jenis_dinding",
    "jenis_atap",
    "sumber_air_minum",
    "sumber_penerangan",
    "daya_listrik_kelas",
    "bahan_bakar_memasak",
    "fasilitas_bab",
    "pendidikan_kepala",
    "pendidikan_tertinggi_dewasa",
)
LINEAR_FEATURES = (
    *(field.name for field in ASSET_FIELDS),
    "log_luas_lantai_per_kapita",
    "log_jumlah_anggota",
    "share_umur_0_14",
    "share_umur_60_plus",
    "share_bekerja_formal",
    "share_bekerja",
    "ada_asn_bumn",
    "share_disabilitas",
    "share_penyakit_kronis",
    "kepala_perempuan",
    "share_anak_7_18_sekolah",
)


def features_frame(conn: psycopg.Connection, truth: Path, reference_date: dt.date) -> pd.DataFrame:
    """Every library feature for each family of a generator truth folder, with its hidden welfare."""
    copy_truth_csv(conn, truth / "expected_keluarga.csv.gz", "fit_family")
    copy_truth_csv(conn, truth / "expected_anggota.csv.gz", "fit_member")
    select = ", ".join(["f.no_kk"] + [f"({FEATURES[name]})::float8 AS {name}" for name in FEATURES])
    query = family_features_query(select, "fit_family", "fit_member", list(MEMBER_FEATURES))
    cur = conn.execute(query, {"reference_date": reference_date})
    frame = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    welfare = pd.read_csv(truth / "welfare.csv.gz", dtype={"no_kk": "int64"})
    return frame.merge(welfare, on="no_kk", how="inner")


def fit_model(frame: pd.DataFrame, *, name: str, version: str, source: str, ridge: float = 1e-3) -> dict:
    """Least squares (a touch of ridge for rare levels) of hidden welfare on the library features."""
    columns, spec = [], []
    design = []
    for feature in CATEGORY_FEATURES:
        values = frame[feature]
        levels = values.dropna().value_counts()
        reference = levels.index[0]  # the most common level is the reference (coefficient 0)
        for level in sorted(levels.index):
            if level == reference:
                continue
            design.append((values == level).to_numpy(float))
            columns.append((feature, int(level)))
        spec.append(feature)
    defaults = {}
    for feature in LINEAR_FEATURES:
        default = float(frame[feature].median()) if frame[feature].notna().any() else 0.0
        defaults[feature] = default
        design.append(frame[feature].fillna(default).to_numpy(float))
        columns.append((feature, None))
    x = np.column_stack(design)
    y = frame["log_pengeluaran_per_kapita"].to_numpy(float)
    # scikit-learn's ridge leaves the intercept unpenalised; the penalty grows with the families so
    # it stays "a touch" whatever the world's size
    fitted = Ridge(alpha=ridge * len(y), fit_intercept=True).fit(x, y)
    r2 = float(fitted.score(x, y))

    terms: dict[str, dict] = {}
    for (feature, level), coef, column in zip(columns, fitted.coef_, x.T, strict=True):
        if level is None:
            terms[feature] = {
                "feature": feature,
                "type": "linear",
                "coefficient": round(float(coef), 5),
                "default": round(defaults[feature], 5),
                "mean_contribution": round(float(coef * column.mean()), 5),
            }
        else:
            term = terms.setdefault(
                feature,
                {"feature": feature, "type": "category", "coefficients": {}, "mean_contribution": 0.0},
            )
            term["coefficients"][str(level)] = round(float(coef), 5)
            term["mean_contribution"] = round(term["mean_contribution"] + float(coef * column.mean()), 5)
    document = {
        "name": name,
        "version": version,
        "target": "log monthly per-capita expenditure (rupiah)",
        "bps_measurement_max_age_months": 12,
        "intercept": round(float(fitted.intercept_), 5),
        "terms": [terms[f] for f in CATEGORY_FEATURES + LINEAR_FEATURES if f in terms],
        "fitted_on": {"source": source, "families": len(frame), "r2": round(r2, 4)},
    }
    parse_model(document)  # what we write must load
    return document


def write_model(document: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
