"""The training data of a calibrated welfare model: the BPS measurements the rounds brought, each with
the family's proxies as they were when it was measured.

Each family's latest measurement surveyed within `months` before an as-of version's reference date
(registry.bps_measurement, by rounds up to that version's) is joined with the family as the version of
the measurement's round ranked it (publish.keluarga / publish.anggota at that version: the registry
right after the measurement's merge), through the feature SQL the ranking itself uses
(`family_features_query`, every feature of the library). So a coefficient fitted here means exactly
what the ranking applies, and a family that changed after its survey is seen as it was surveyed.

One feature query per version in the window (a few), each reading its families by key: the frame
holds only measured families, a small share of the registry.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import psycopg

from dtsen.errors import DataError
from dtsen.rank.model import FEATURES, MEMBER_FEATURES, RankingModel, family_features_query
from dtsen.sqlfiles import statements

SQL = "model/training.sql"
DEFAULT_MONTHS = 36
# the frame's columns: the family and its measurement, then one per library feature, then the current
# model's score
COLUMNS = ("no_kk", "kode_wilayah", "tanggal_survei", "round_seq", "version", "y", *FEATURES, "s_current")


class TrainingError(DataError):
    pass


def current_version(conn: psycopg.Connection) -> int:
    """The current published version: the default as-of version."""
    row = conn.execute("SELECT version FROM publish.current_version").fetchone()
    if row is None:
        raise TrainingError("no version is published yet: a model is trained as of a published version")
    return row[0]


def _select(current: RankingModel) -> str:
    features = ",\n        ".join(f"({expr})::float8 AS {name}" for name, expr in FEATURES.items())
    return f"""f.no_kk, f.kode_wilayah, f.survei_tanggal AS tanggal_survei, f.survei_round AS round_seq,
        f.version, ln(f.survei_pengeluaran::float8) AS y,
        {features},
        ({current.score_sql()})::float8 AS s_current"""


def training_frame(
    conn: psycopg.Connection,
    current: RankingModel,
    *,
    months: int = DEFAULT_MONTHS,
    as_of_version: int | None = None,
) -> pd.DataFrame:
    """One row per measured family: no_kk, kode_wilayah (10-digit text), tanggal_survei, round_seq and
    version (of its measurement), y = ln(pengeluaran_per_kapita), every library feature (float; the
    weight is `jumlah_anggota`), and `s_current`, the current model's score of the family as ranked.

    `frame.attrs` tells what the window held: as_of_version, as_of (its reference date), months,
    measured (families measured in the window), unranked (measured by a round that has no version),
    not_ranked (missing from their round's version), repeated (families measured twice in the window:
    `pairs`, and the `variance` of their latest two log measurements' difference, which tells the
    survey's noise). Runs in the caller's transaction."""
    if months < 1:
        raise TrainingError(f"the training window must be at least a month, not {months}")
    as_of_version = current_version(conn) if as_of_version is None else as_of_version
    sql = statements(SQL)
    params = {"as_of_version": as_of_version, "months": months}
    for name in ("reset", "window", "measured", "index_measured"):
        conn.execute(sql[name], params)
    pairs, variance = conn.execute(sql["repeated"]).fetchone()
    counts = conn.execute(sql["counts"], params).fetchone()
    if counts is None:
        raise TrainingError(f"there is no version {as_of_version}")
    measured, unranked, not_ranked, as_of = counts
    query = family_features_query(
        _select(current), f"({sql['families']})", f"({sql['members']})", list(MEMBER_FEATURES)
    )
    rows = []
    for version, reference_date in conn.execute(sql["versions"]).fetchall():
        cur = conn.execute(query, {"version": version, "reference_date": reference_date})
        assert tuple(d.name for d in cur.description) == COLUMNS
        rows += cur.fetchall()
    conn.execute(sql["reset"])
    frame = _typed(pd.DataFrame(rows, columns=list(COLUMNS)).sort_values("no_kk", ignore_index=True))
    frame.attrs.update(
        as_of_version=as_of_version,
        as_of=as_of.isoformat() if isinstance(as_of, dt.date) else as_of,
        months=months,
        measured=int(measured),
        unranked=int(unranked),
        not_ranked=int(not_ranked),
        repeated={"pairs": int(pairs), "variance": float(variance) if variance is not None else None},
    )
    return frame


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    floats = ["y", "s_current", *FEATURES]
    frame[floats] = frame[floats].astype("float64")  # NULL -> NaN
    frame["no_kk"] = frame["no_kk"].astype("int64")
    frame["round_seq"] = frame["round_seq"].astype("int64")
    frame["version"] = frame["version"].astype("int64")
    frame["kode_wilayah"] = frame["kode_wilayah"].astype(str)
    return frame


def province(frame: pd.DataFrame) -> pd.Series:
    return frame["kode_wilayah"].str[:2]


def summary(frame: pd.DataFrame) -> dict:
    """The document's and the card's "training" block: window, surveys from/to, families (per
    province), villages, and what the window held but could not be used."""
    attrs = frame.attrs
    dates = pd.to_datetime(frame["tanggal_survei"]) if len(frame) else None
    return {
        "window_months": attrs.get("months"),
        "as_of_version": attrs.get("as_of_version"),
        "as_of": attrs.get("as_of"),
        "from": dates.min().date().isoformat() if dates is not None else None,
        "to": dates.max().date().isoformat() if dates is not None else None,
        "families": len(frame),
        "villages": int(frame["kode_wilayah"].nunique()),
        "families_per_province": {p: int(n) for p, n in sorted(province(frame).value_counts().items())},
        "measured": attrs.get("measured"),
        "unranked": attrs.get("unranked"),
        "not_ranked": attrs.get("not_ranked"),
        "measured_twice": (attrs.get("repeated") or {}).get("pairs"),
    }
