"""A regency's synthetic population, built vectorised with numpy (no per-person Python loop).

Every family has a hidden welfare value (log monthly per-capita expenditure); its size, housing,
assets and its members' education and work are drawn from ordered categories shifted by that value,
so a proxy-means test can recover it only approximately, as in reality.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dtsen_dev.generate.numbers import BIRTH_EPOCH, ISSUE_EPOCH, SerialCounters, compose

if TYPE_CHECKING:
    from dtsen_dev.generate.relation import Relation

WELFARE_MEAN = np.log(1_200_000)  # median per-capita expenditure, rupiah/month
WELFARE_SD = 0.55

# Categories ordered from poorest to richest with their national shares (roughly Susenas-like).
ORDERED: dict[str, tuple[list[int], list[float]]] = {
    "status_kepemilikan_rumah": ([3, 5, 2, 1, 4], [0.08, 0.02, 0.15, 0.70, 0.05]),
    "jenis_lantai": ([8, 7, 5, 6, 9, 4, 2, 3, 1], [0.05, 0.03, 0.08, 0.15, 0.01, 0.1, 0.5, 0.03, 0.05]),
    "jenis_dinding": ([6, 4, 5, 7, 3, 2, 1], [0.04, 0.05, 0.03, 0.01, 0.15, 0.07, 0.65]),
    "jenis_atap": ([7, 6, 5, 8, 3, 4, 2, 1], [0.02, 0.01, 0.04, 0.01, 0.34, 0.08, 0.40, 0.10]),
    "sumber_air_minum": (
        [9, 8, 6, 10, 11, 7, 5, 4, 3, 2, 1],
        [0.03, 0.03, 0.07, 0.02, 0.01, 0.08, 0.12, 0.19, 0.10, 0.25, 0.10],
    ),
    "sumber_penerangan": ([4, 3, 2, 1], [0.01, 0.02, 0.07, 0.90]),
    "daya_listrik_va": ([450, 900, 1300, 2200, 3500, 5500], [0.22, 0.45, 0.20, 0.08, 0.04, 0.01]),
    "bahan_bakar_memasak": ([7, 8, 6, 5, 3, 4, 2, 1], [0.12, 0.01, 0.02, 0.03, 0.69, 0.01, 0.09, 0.03]),
    "fasilitas_bab": ([4, 3, 2, 1], [0.05, 0.10, 0.10, 0.75]),
}
ASSETS: dict[str, float] = {  # share owning; richer families own more (ternak: poorer, rural)
    "punya_kulkas": 0.65,
    "punya_ac": 0.12,
    "punya_sepeda_motor": 0.80,
    "punya_mobil": 0.12,
    "punya_emas": 0.25,
    "punya_lahan": 0.35,
    "punya_ternak": 0.20,
}
_STD = NormalDist()
SQRT2 = np.sqrt(2.0)


def ordered_draw(
    rng: np.random.Generator, z: np.ndarray, codes: list[int], shares: list[float], spread: float = SQRT2
) -> np.ndarray:
    """Ordered category from a latent z + noise, cut at the quantiles that give `shares` overall
    (`spread`: the latent's standard deviation, sqrt(2) for a standard normal z)."""
    cuts = np.array([_STD.inv_cdf(min(max(c, 1e-9), 1 - 1e-9)) for c in np.cumsum(shares)[:-1]]) * spread
    latent = z + rng.standard_normal(len(z))
    return np.asarray(codes)[np.searchsorted(cuts, latent)]


def asset_draw(
    rng: np.random.Generator, z: np.ndarray, share: float, sign: float = 1.0, spread: float = SQRT2
) -> np.ndarray:
    cut = _STD.inv_cdf(1 - share) * spread
    return ((sign * z + rng.standard_normal(len(z))) > cut).astype(np.int16)


@dataclass
class NamePools:
    male: np.ndarray
    female: np.ndarray
    last: np.ndarray
    streets: np.ndarray

    @classmethod
    def build(cls, seed: int, size: int = 600) -> NamePools:
        from faker import Faker

        fake = Faker("id_ID")
        fake.seed_instance(seed)
        uniq = lambda f: np.array(sorted({f() for _ in range(size)}))  # noqa: E731
        return cls(
            uniq(fake.first_name_male),
            uniq(fake.first_name_female),
            uniq(fake.last_name),
            uniq(fake.street_name),
        )

    def names(self, rng: np.random.Generator, female: np.ndarray) -> np.ndarray:
        first = np.where(female, rng.choice(self.female, len(female)), rng.choice(self.male, len(female)))
        has_last = rng.random(len(female)) < 0.75  # many Indonesians have a single name
        last = rng.choice(self.last, len(female))
        return np.where(has_last, np.char.add(np.char.add(first.astype(str), " "), last.astype(str)), first)


def _birth_dates(rng: np.random.Generator, ages: np.ndarray, on: dt.date) -> np.ndarray:
    ref = np.datetime64(on, "D") - 7  # nobody is born after the Dukcapil snapshot that lists them
    days = (ages * 365.25 + rng.integers(0, 365, len(ages))).astype(np.int64)
    born = ref - days
    born = np.maximum(born, np.datetime64(BIRTH_EPOCH, "D") + 1)
    # Unknown birth dates are registered by convention: 31 Dec before 2004, 1 July since; or the 15th.
    odd = rng.random(len(ages))
    years = born.astype("datetime64[Y]")
    conventional = np.where(
        years < np.datetime64("2004", "Y"),
        years + np.timedelta64(1, "Y") - np.timedelta64(1, "D"),
        years.astype("datetime64[D]") + np.timedelta64(181, "D"),
    )
    conventional = np.where(
        conventional.astype("datetime64[Y]") >= np.datetime64("2004", "Y"),
        years.astype("datetime64[M]") + np.timedelta64(6, "M"),
        conventional,
    ).astype("datetime64[D]")
    fifteenth = born.astype("datetime64[M]").astype("datetime64[D]") + np.timedelta64(14, "D")
    born = np.where(odd < 0.03, conventional, np.where(odd < 0.04, fifteenth, born))
    return np.minimum(born, ref).astype("datetime64[D]")


@dataclass
class RegencyFrame:
    families: pd.DataFrame
    persons: pd.DataFrame


def build_population(
    rng: np.random.Generator,
    n_persons: int,
    villages: np.ndarray,
    home_districts: list[str],
    foreign_districts: list[str],
    nik_counters: SerialCounters,
    kk_counters: SerialCounters,
    names: NamePools,
    on: dt.date,
    regency_shift: float,
    relation: Relation | None = None,
) -> RegencyFrame:
    """Families and persons of one regency; `on` is the reference date for ages. `relation` ties the
    proxies to welfare (None: the default relation, drawn exactly as it always was)."""
    n_fam = max(1, int(round(n_persons / 3.3)))
    welfare = WELFARE_MEAN + regency_shift + WELFARE_SD * rng.standard_normal(n_fam)
    z = (welfare - WELFARE_MEAN) / WELFARE_SD  # what the proxies see
    other = relation is not None and not relation.is_default
    lam = relation.loading if other else (lambda proxy: 1.0)  # noqa: E731
    size = np.clip(1 + rng.poisson(np.clip(2.4 - 0.45 * lam("ukuran_keluarga") * z, 0.3, 6.0)), 1, 10)

    fam_village = rng.choice(villages, n_fam)
    if other:  # the offsets no proxy shows: welfare moves, z (what the proxies see) does not
        welfare = welfare + relation.hidden(fam_village)
    fam = pd.DataFrame({"kode_wilayah": fam_village, "welfare": welfare, "z": z, "size": size})
    for attr, (codes, shares) in ORDERED.items():
        if other:
            latent, spread = relation.latent(attr, z, fam_village)
            fam[attr] = ordered_draw(rng, latent, codes, shares, spread)
        else:
            fam[attr] = ordered_draw(rng, z, codes, shares)
    floor_z = relation.latent("luas_lantai_m2", z, fam_village)[0] if other else z
    fam["luas_lantai_m2"] = np.clip(
        np.exp(3.7 + 0.35 * floor_z + 0.3 * rng.standard_normal(n_fam)), 6, 1500
    ).astype(int)
    no_pln = fam["sumber_penerangan"].isin([3, 4]).to_numpy()
    fam.loc[no_pln, "daya_listrik_va"] = 0
    for attr, share in ASSETS.items():
        if other:
            latent, spread = relation.latent(attr, z, fam_village)
            fam[attr] = asset_draw(rng, latent, share, 1.0, spread)
        else:
            fam[attr] = asset_draw(rng, z, share, -1.0 if attr == "punya_ternak" else 1.0)

    # Members: slot 0 is the head; then an optional spouse; the rest children and relatives.
    fam_idx = np.repeat(np.arange(n_fam), size)
    slot = np.arange(len(fam_idx)) - np.repeat(np.cumsum(size) - size, size)
    has_spouse = (size >= 2) & (rng.random(n_fam) < 0.82)
    head_female = np.where(has_spouse, rng.random(n_fam) < 0.06, rng.random(n_fam) < 0.45)
    head_age = np.clip(rng.normal(45, 13, n_fam), 18, 90)
    hub = np.full(len(fam_idx), 3, dtype=np.int16)
    hub[slot == 0] = 1
    spouse_slot = (slot == 1) & has_spouse[fam_idx]
    hub[spouse_slot] = 2
    other = rng.random(len(fam_idx))
    is_rest = slot >= np.where(has_spouse[fam_idx], 2, 1)
    hub[is_rest & (other < 0.05)] = 6
    hub[is_rest & (other >= 0.05) & (other < 0.10)] = 5
    hub[is_rest & (other >= 0.10) & (other < 0.13)] = 7
    hub[is_rest & (other >= 0.13) & (other < 0.14)] = 8
    hub[is_rest & (other >= 0.14) & (other < 0.16)] = 4

    h_age = head_age[fam_idx]
    age = np.where(hub == 1, h_age, 0.0)
    age = np.where(hub == 2, np.clip(h_age + rng.normal(-3, 4, len(age)), 17, 95), age)
    max_child = np.clip(h_age - 18, 0, 40)
    age = np.where(hub == 3, rng.random(len(age)) * max_child, age)
    age = np.where(hub == 6, np.clip(h_age + rng.normal(27, 4, len(age)), 40, 100), age)
    age = np.where(hub == 5, rng.random(len(age)) * np.clip(h_age - 38, 0, 12), age)
    age = np.where(np.isin(hub, [4, 7, 8]), np.clip(rng.normal(30, 12, len(age)), 15, 80), age)
    female = np.where(
        hub == 1, head_female[fam_idx], np.where(hub == 2, ~head_female[fam_idx], rng.random(len(age)) < 0.5)
    )
    female = np.where(hub == 6, rng.random(len(age)) < 0.6, female)
    born = _birth_dates(rng, age, on)
    age_years = age.astype(int)

    fz = z[fam_idx]
    edu_z, school_z, work_z = (lam(p) * fz for p in ("pendidikan", "sekolah", "pekerjaan_formal"))
    marital = np.where(age_years < 17, 1, np.where(rng.random(len(age)) < 0.7, 1, 2))
    marital = np.where(np.isin(hub, [1, 2]) & has_spouse[fam_idx], 2, marital)
    single_head = (hub == 1) & ~has_spouse[fam_idx]
    marital = np.where(single_head, np.where(age_years > 60, 4, rng.choice([1, 3], len(age))), marital)
    marital = np.where(hub == 6, rng.choice([2, 4], len(age)), marital)
    latent = 1.8 + 1.0 * edu_z + 0.9 * rng.standard_normal(len(age)) - 0.02 * np.clip(age_years - 40, 0, 60)
    adult_edu = np.clip(np.round(latent), 0, 6).astype(np.int16)
    child_edu = np.select(
        [age_years < 7, age_years < 13, age_years < 16, age_years < 19],
        [0, np.where(age_years >= 8, 1, 0), 1, 2],
        3,
    )
    edu = np.where(age_years < 19, np.minimum(child_edu, adult_edu + 1), adult_edu).astype(np.int16)
    in_school_p = 1 / (1 + np.exp(-(2.2 + 1.2 * school_z)))
    school = np.where(age_years < 5, 0, np.where(age_years < 7, rng.random(len(age)) < 0.5, 0)).astype(
        np.int16
    )
    school = np.where(
        (age_years >= 7) & (age_years <= 18), np.where(rng.random(len(age)) < in_school_p, 1, 2), school
    )
    school = np.where(
        (age_years > 18) & (age_years <= 23) & (edu >= 3) & (rng.random(len(age)) < 0.3 + 0.2 * school_z),
        1,
        school,
    )
    school = np.where((age_years > 18) & (school != 1), np.where(edu > 0, 2, 0), school).astype(np.int16)
    work_p = rng.random(len(age))
    formal = 1 / (1 + np.exp(-(1.5 * work_z - 2.5)))
    work = np.select(
        [
            age_years < 15,
            school == 1,
            age_years >= 70,
            work_p < formal * 0.15,
            work_p < formal * 0.22,
            work_p < 0.35,
            work_p < 0.55,
            work_p < 0.72,
            work_p < 0.8,
        ],
        [0, 0, 0, 5, 6, 2, 1, 3, 4],
        0,
    ).astype(np.int16)
    work = np.where(
        (hub == 1) & (age_years < 70) & (work == 0) & (rng.random(len(age)) < 0.8),
        rng.choice([1, 2, 3], len(age)),
        work,
    ).astype(np.int16)

    # Numbers: a family's KK is issued in its district; a person's NIK in the district where they
    # were first registered: usually the family's, sometimes another generated regency's.
    fam_district = np.char.ljust(fam_village.astype("U10"), 10).astype("U6")
    issue_days = rng.integers(
        0, max(1, (np.datetime64(on, "D") - np.datetime64(ISSUE_EPOCH, "D")).astype(int)), n_fam
    )
    issued = np.datetime64(ISSUE_EPOCH, "D") + issue_days
    kk_didx = np.array([kk_counters.index[d] for d in fam_district])
    no_kk = compose(fam_district, issued, kk_counters.allocate(kk_didx, issued))

    reg_district = fam_district[fam_idx].copy()
    if foreign_districts:
        moved_in = (age_years >= 17) & (rng.random(len(age)) < 0.08)
        reg_district[moved_in] = rng.choice(np.array(foreign_districts), int(moved_in.sum()))
    nik_didx = np.array([nik_counters.index[d] for d in reg_district])
    nik = compose(reg_district, born, nik_counters.allocate(nik_didx, born), female=female)

    streets = rng.choice(names.streets, n_fam).astype(str)
    alamat = np.char.add(streets, np.char.add(" No. ", rng.integers(1, 200, n_fam).astype(str)))
    alamat = np.char.add(
        alamat, np.char.add(", RT ", np.char.zfill(rng.integers(1, 20, n_fam).astype(str), 3))
    )
    alamat = np.char.add(
        alamat, np.char.add("/RW ", np.char.zfill(rng.integers(1, 12, n_fam).astype(str), 3))
    )
    fam.insert(0, "no_kk", no_kk)
    fam.insert(2, "alamat", alamat)
    persons = pd.DataFrame(
        {
            "nik": nik,
            "no_kk": no_kk[fam_idx],
            "hubungan_keluarga": hub,
            "nama": names.names(rng, female),
            "jenis_kelamin": np.where(female, 2, 1).astype(np.int16),
            "tanggal_lahir": born,
            "status_perkawinan": marital.astype(np.int16),
            "pendidikan_tertinggi": edu,
            "status_sekolah": school,
            "status_pekerjaan": work,
            "disabilitas": (rng.random(len(age)) < 0.02 + 0.002 * np.clip(age_years - 50, 0, 40)).astype(
                np.int16
            ),
            "penyakit_kronis": (rng.random(len(age)) < 0.03 + 0.004 * np.clip(age_years - 35, 0, 50)).astype(
                np.int16
            ),
        }
    )
    return RegencyFrame(fam.drop(columns=["z", "size"]), persons)
