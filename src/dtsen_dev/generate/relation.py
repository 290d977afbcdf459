"""How a family's proxies relate to its hidden welfare: the default relation, or another one.

The project's default ranking model (config/ranking/pmt-v1.json) was fitted on worlds drawn with the
default relation, so it fits them well. `--relation other` and `--relation regional` draw worlds it
does not fit, for measuring how a fixed model transfers and how a model calibrated on the survey
measurements recovers (issue 25):

- default: every proxy is an ordered draw on z = (welfare - mean) / sd (the regency's welfare shift
  is seen by the proxies);
- other: each proxy has its own loading lambda_a (latent = lambda_a * z + noise; some proxies weak,
  some strong), and land and livestock have their signs flipped (poor farming families own land and
  livestock; richer ones neither);
- regional: other, plus hidden welfare offsets the proxies do not show: one per province, one per
  regency, and a premium for kelurahan (urban villages, digit 7 of the village code is 1) over desa;
  urban dwellings are also smaller and rarely hold land or livestock, whatever the family's welfare.
  The proxies see z = (welfare - hidden offset - mean) / sd, so the relation between proxies and
  welfare differs by region.

The parameters are drawn from a random stream of their own, numpy default_rng([seed, 25]), so a
default world consumes exactly the draws it always did and stays byte-identical (data/sample); they
are stratified (see Relation.draw) so that every world is about as far from the default as another.
A world's parameters are written to truth/relation.json (a default world has no such file).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np

from dtsen_dev.generate.population import ASSETS, ORDERED, WELFARE_MEAN, WELFARE_SD

RELATIONS = ("default", "other", "regional")
STREAM = 25  # the parameters' stream: default_rng([seed, STREAM])
# Proxies with a loading: the family attributes drawn from welfare, the family's size, and the
# members' education, schooling and formal work.
MEMBER_PROXIES = ("ukuran_keluarga", "pendidikan", "sekolah", "pekerjaan_formal")
PROXIES = (*ORDERED, "luas_lantai_m2", *ASSETS, *MEMBER_PROXIES)
LOADING_RANGE = (0.2, 1.6)
FLIPPED = ("punya_lahan", "punya_ternak")  # signs opposite to the default relation's
DEFAULT_SIGN = {"punya_ternak": -1.0}  # the default relation: livestock marks the poorer families
PROVINCE_SD = 0.25
REGENCY_SD = 0.15
KELURAHAN_OFFSET = 0.3
# Shift of the proxies' latent in kelurahan (urban dwellings are small and hold no land or livestock).
URBAN_PROXY_SHIFT = {"luas_lantai_m2": -0.5, "punya_lahan": -1.0, "punya_ternak": -1.0}


@dataclass(frozen=True)
class Relation:
    name: str = "default"
    loadings: dict[str, float] = field(default_factory=dict)  # signed; a proxy not listed: 1 (default)
    province_offsets: dict[str, float] = field(default_factory=dict)
    regency_offsets: dict[str, float] = field(default_factory=dict)
    kelurahan_offset: float = 0.0
    urban_shift: dict[str, float] = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        return self.name == "default"

    @classmethod
    def draw(cls, name: str, seed: int, regencies: list[str]) -> Relation:
        """The relation `name` of world `seed`, whose regencies are `regencies`.

        Stratified, so that every world is about as far from the default relation as another: the
        loadings are LOADING_RANGE cut into evenly spaced values, dealt to the proxies in a random
        order; the province offsets are the normal quantiles (i + 1/2) / k of N(0, PROVINCE_SD) over
        the world's k provinces, in a random order; regency offsets are N(0, REGENCY_SD)."""
        if name not in RELATIONS:
            raise ValueError(f"relation must be one of {', '.join(RELATIONS)}, not {name!r}")
        if name == "default":
            return cls()
        rng = np.random.default_rng([seed, STREAM])
        dealt = np.linspace(*LOADING_RANGE, len(PROXIES))[rng.permutation(len(PROXIES))]
        loadings = {
            p: round(float(v) * DEFAULT_SIGN.get(p, 1.0) * (-1.0 if p in FLIPPED else 1.0), 4)
            for p, v in zip(PROXIES, dealt, strict=True)
        }
        if name == "other":
            return cls(name, loadings)
        regencies = sorted(regencies)
        provinces = sorted({r[:2] for r in regencies})
        k = len(provinces)
        quantiles = np.array([NormalDist().inv_cdf((i + 0.5) / k) for i in range(k)])
        prov = PROVINCE_SD * quantiles[rng.permutation(k)]
        reg = rng.normal(0, REGENCY_SD, len(regencies))
        return cls(
            name,
            loadings,
            {p: round(float(v), 4) for p, v in zip(provinces, prov, strict=True)},
            {r: round(float(v), 4) for r, v in zip(regencies, reg, strict=True)},
            KELURAHAN_OFFSET,
            dict(URBAN_PROXY_SHIFT),
        )

    def hidden(self, villages) -> np.ndarray:
        """Each village's welfare offset that no proxy shows (0 outside the regional relation)."""
        codes = np.asarray(villages).astype("U10")
        if not self.province_offsets and not self.regency_offsets and not self.kelurahan_offset:
            return np.zeros(len(codes))
        prov = np.array([self.province_offsets.get(c[:2], 0.0) for c in codes])
        reg = np.array([self.regency_offsets.get(c[:4], 0.0) for c in codes])
        return prov + reg + self.kelurahan_offset * urban(codes)

    def seen_z(self, welfare: float, village: str) -> float:
        """The standardised welfare a family's proxies are drawn from."""
        if self.is_default:
            return (welfare - np.log(1_200_000)) / 0.55  # exactly as the default world always did
        return float((welfare - self.hidden([village])[0] - WELFARE_MEAN) / WELFARE_SD)

    def loading(self, proxy: str) -> float:
        return self.loadings.get(proxy, DEFAULT_SIGN.get(proxy, 1.0))

    def latent(self, proxy: str, z: np.ndarray, villages) -> tuple[np.ndarray, float]:
        """A proxy's latent mean for standardised welfare z and the spread its cuts are scaled by
        (so that a weak or strong loading keeps the national shares of a category)."""
        lam = self.loading(proxy)
        shifted = lam * np.asarray(z, dtype=float)
        shift = self.urban_shift.get(proxy, 0.0)
        if shift:
            shifted = shifted + shift * urban(villages)
        return shifted, math.sqrt(1.0 + lam * lam)

    def moved(self, welfare: float, from_village: str, to_village: str) -> float:
        """A family founded in another village from one of `from_village` (a marriage, a split): the
        welfare it inherits, with the hidden offset of its new village instead of the old one's."""
        if self.is_default:
            return welfare
        old, new = self.hidden([from_village, to_village])
        return float(welfare - old + new)

    def document(self, seed: int, regencies: list[str]) -> dict:
        """The parameters, for truth/relation.json."""
        provinces = sorted({r[:2] for r in regencies})
        return {
            "relation": self.name,
            "stream": [seed, STREAM],
            "welfare": "log monthly per-capita expenditure = mean + regency shift (seen by the proxies)"
            " + hidden offset + 0.55 * N(0, 1)",
            "proxies": "latent = loading * (welfare - hidden offset - mean) / 0.55 + urban shift + N(0, 1),"
            " cut at the national shares scaled by sqrt(1 + loading^2)",
            "welfare_mean": round(float(WELFARE_MEAN), 5),
            "welfare_sd": WELFARE_SD,
            "loadings": {p: self.loading(p) for p in PROXIES},
            "province_offsets": {p: self.province_offsets.get(p, 0.0) for p in sorted(provinces)},
            "regency_offsets": {r: self.regency_offsets.get(r, 0.0) for r in sorted(regencies)},
            "kelurahan_offset": self.kelurahan_offset,
            "urban_proxy_shift": dict(self.urban_shift),
        }

    def write(self, path: Path, seed: int, regencies: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.document(seed, regencies), indent=2) + "\n")


def urban(villages) -> np.ndarray:
    """1.0 for a kelurahan (digit 7 of the village code is 1), else 0.0."""
    return np.array([1.0 if len(str(v)) >= 7 and str(v)[6] == "1" else 0.0 for v in np.asarray(villages)])


DEFAULT = Relation()
