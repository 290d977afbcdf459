"""Rounds of a synthetic world, one regency at a time.

State per regency (families and persons, whether in the registry or known only to Dukcapil) is kept
on disk between rounds, so memory is bounded by the largest regency. A round's clean events change
the state (it is the expected registry); injected cases only add rows whose effect is not applied,
each with the reason code(s) the pipeline must give them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dtsen.domain.codes import FAMILY_ATTRIBUTES, MEMBER_ATTRIBUTES
from dtsen_dev.generate.names import name_variant
from dtsen_dev.generate.numbers import SerialCounters, compose
from dtsen_dev.generate.population import ASSETS, ORDERED, SQRT2, NamePools, ordered_draw
from dtsen_dev.generate.relation import DEFAULT, Relation
from dtsen_dev.generate.rows import SubmissionRows, anggota_row, fmt_date, keluarga_row

# Quarterly churn, as shares of persons or families.
RATES = {
    "birth": 0.004,
    "death_reported": 0.0015,
    "death_unreported": 0.0005,
    "head_death": 0.0008,
    "head_death_unreported": 0.0008,
    "marriage": 0.003,
    "move_village": 0.002,
    "attribute_change": 0.03,
    "member_change": 0.01,
    "removal": 0.001,
    "new_family": 0.004,
    "move_family_out": 0.001,
    "move_person_out": 0.001,
    "bps": 0.05,
    "kemensos": 0.03,
    "name_variant": 0.01,
}
ALASAN_ANGGOTA_FOR = {
    "PINDAH": "PINDAH",
    "DUPLIKAT": "DUPLIKAT",
    "TIDAK_DITEMUKAN": "SALAH_DATA",
    "MAMPU": "PINDAH",
}


@dataclass
class RoundContext:
    round_id: str
    round_index: int
    start: dt.date
    cutoff: dt.date
    regency: str
    regency_index: int
    villages: np.ndarray
    other_villages: np.ndarray  # villages of other generated regencies (WILAYAH_OUT_OF_SCOPE)
    nik_counters: SerialCounters
    kk_counters: SerialCounters
    names: NamePools
    error_share: float
    relation: Relation = DEFAULT  # how proxies relate to welfare (dtsen_dev.generate.relation)
    bps_share: float = RATES["bps"]  # share of the registry's families BPS measures this round
    # of those, the share drawn from families BPS measured in an earlier round (a rotating panel, as
    # Susenas' panel module): their two measurements tell the survey's noise
    bps_panel: float = 0.0

    @property
    def submission_id(self) -> str:
        return f"{self.regency}-{self.round_id.replace('-', '')}-01"

    def day(self, rng: np.random.Generator) -> dt.date:
        span = (self.cutoff - self.start).days - 10
        return self.start + dt.timedelta(days=int(rng.integers(0, max(span, 1))))


@dataclass
class State:
    families: pd.DataFrame  # all families ever in this regency; in_registry marks the open ones
    persons: pd.DataFrame  # everyone Dukcapil knows here; in_registry / alive flags

    def registry_persons(self) -> pd.DataFrame:
        return self.persons[self.persons.in_registry]

    def registry_families(self) -> pd.DataFrame:
        return self.families[self.families.in_registry]


class Picker:
    """Draws records not yet touched this round, so no record is changed twice."""

    def __init__(self, rng: np.random.Generator, state: State):
        self.rng = rng
        self.state = state
        self.touched_persons: set[str] = set()
        self.touched_families: set[str] = set()

    def persons(self, mask: pd.Series, n: int) -> pd.DataFrame:
        pool = self.state.persons[mask & ~self.state.persons.nik.isin(self.touched_persons)]
        if pool.empty or n <= 0:
            return pool.iloc[:0]
        chosen = pool.iloc[np.sort(self.rng.choice(len(pool), min(n, len(pool)), replace=False))]
        self.touched_persons.update(chosen.nik)
        return chosen

    def families(self, mask: pd.Series, n: int) -> pd.DataFrame:
        fams = self.state.families
        pool = fams[mask & ~fams.no_kk.isin(self.touched_families)]
        if pool.empty or n <= 0:
            return pool.iloc[:0]
        chosen = pool.iloc[np.sort(self.rng.choice(len(pool), min(n, len(pool)), replace=False))]
        self.touched_families.update(chosen.no_kk)
        return chosen

    def untouched_family_members(self) -> pd.Series:
        """Families none of whose members were touched."""
        busy = self.state.persons.loc[self.state.persons.nik.isin(self.touched_persons), "no_kk"]
        return ~self.state.families.no_kk.isin(busy)


def count(rng: np.random.Generator, base: int, rate: float) -> int:
    return int(rng.binomial(base, rate)) if base else 0


def ages_on(persons: pd.DataFrame, on: dt.date) -> np.ndarray:
    return (np.datetime64(on, "D") - persons.tanggal_lahir.to_numpy().astype("datetime64[D]")).astype(
        int
    ) / 365.25


def new_person(
    ctx: RoundContext,
    rng: np.random.Generator,
    no_kk: str,
    district: str,
    born: dt.date,
    female: bool,
    hub: int,
) -> dict:
    didx = np.array([ctx.nik_counters.index[district]])
    dates = np.array([np.datetime64(born, "D")])
    nik = compose(
        np.array([district]), dates, ctx.nik_counters.allocate(didx, dates), female=np.array([female])
    )[0]
    return {
        "nik": str(nik),
        "no_kk": no_kk,
        "hubungan_keluarga": hub,
        "nama": str(ctx.names.names(rng, np.array([female]))[0]),
        "jenis_kelamin": 2 if female else 1,
        "tanggal_lahir": pd.Timestamp(born),
        "status_perkawinan": 1,
        "pendidikan_tertinggi": 0,
        "status_sekolah": 0,
        "status_pekerjaan": 0,
        "disabilitas": 0,
        "penyakit_kronis": 0,
        "in_registry": True,
        "alive": True,
        "tanggal_meninggal": pd.NaT,
    }


def _first_index_by(keys: pd.Series) -> pd.Series:
    """Row label of the first row with each key: O(1) lookups instead of a scan per event."""
    return pd.Series(keys.index, index=keys.to_numpy()).groupby(level=0, sort=False).first()


def new_kk(ctx: RoundContext, rng: np.random.Generator, district: str) -> str:
    issued = np.array([np.datetime64(ctx.day(rng), "D")])
    didx = np.array([ctx.kk_counters.index[district]])
    return str(compose(np.array([district]), issued, ctx.kk_counters.allocate(didx, issued))[0])


def redraw_attribute(
    rng: np.random.Generator,
    attr: str,
    current: int,
    welfare: float,
    relation: Relation = DEFAULT,
    village: str = "",
) -> int:
    """A new value for one attribute, different from the current one, drawn from the family's
    welfare as `relation` ties them (the family lives in `village`)."""
    z = np.array([relation.seen_z(welfare, village)])
    latent, spread = z, SQRT2  # the default relation: drawn exactly as it always was
    if attr in ORDERED and not relation.is_default:
        latent, spread = relation.latent(attr, z, [village])
    for _ in range(20):
        if attr in ORDERED:
            codes, shares = ORDERED[attr]
            value = int(ordered_draw(rng, latent, codes, shares, spread)[0])
        elif attr == "luas_lantai_m2":
            value = int(np.clip(current * rng.uniform(0.6, 1.6), 6, 1500))
        elif attr in ASSETS:
            value = 1 - int(current)
        else:
            value = current
        if value != current:
            return value
    return current


def _dates(ctx: RoundContext, rng: np.random.Generator, n: int) -> np.ndarray:
    span = max((ctx.cutoff - ctx.start).days - 10, 1)
    return np.datetime64(ctx.start, "D") + rng.integers(0, span, n)


def initial_rows(ctx: RoundContext, rng: np.random.Generator, state: State, sub: SubmissionRows) -> None:
    """Round 1: the whole registry of the regency as TAMBAH (the migration from the old registries)."""
    fams = state.registry_families()
    dates = _dates(ctx, rng, len(fams))
    state.families.loc[fams.index, "tanggal_pendataan"] = pd.to_datetime(dates)
    fams = state.families.loc[fams.index]
    kel = fams[["no_kk", "kode_wilayah", "alamat", "tanggal_pendataan", *FAMILY_ATTRIBUTES]].copy()
    kel.insert(0, "operasi", "TAMBAH")
    kel["tanggal_pendataan"] = kel.tanggal_pendataan.dt.strftime("%Y-%m-%d")
    kel["alasan_hapus"] = ""
    sub.add_frame("keluarga.csv", kel.astype(str))
    pers = state.registry_persons()
    variant = rng.random(len(pers)) < RATES["name_variant"]
    ang = pers[
        ["nik", "no_kk", "nama", "jenis_kelamin", "tanggal_lahir", "hubungan_keluarga", *MEMBER_ATTRIBUTES]
    ].copy()
    ang.insert(0, "operasi", "TAMBAH")
    ang["tanggal_lahir"] = ang.tanggal_lahir.dt.strftime("%Y-%m-%d")
    ang["alasan_hapus"] = ""
    sub.add_frame("anggota.csv", ang[~variant].astype(str))
    for _, p in pers[variant].iterrows():
        sub.add(
            "anggota.csv",
            anggota_row("TAMBAH", p, nama=name_variant(p.nama)),
            case="NAME_VARIANT",
            key_type="nik",
            note="pemda spelling differs from Dukcapil; registry keeps Dukcapil's nama",
        )


def survey_and_groundcheck(
    ctx: RoundContext,
    rng: np.random.Generator,
    state: State,
    picker: Picker,
    bps: SubmissionRows,
    kemensos: SubmissionRows,
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """BPS measures a share of families (`ctx.bps_share`, 5% by default; authoritative for the
    attributes it carries), Kemensos checks ~3%. Returns the surveyed families and BPS's values (for
    the BPS-vs-pemda conflict case)."""
    measured: dict[str, dict] = {}
    fams_mask = state.families.in_registry
    n = count(rng, int(fams_mask.sum()), ctx.bps_share)
    revisited = picker.families(fams_mask & state.families.tanggal_survei.notna(), round(n * ctx.bps_panel))
    surveyed = picker.families(fams_mask, n - len(revisited))
    if len(revisited):
        surveyed = pd.concat([revisited, surveyed])
    for idx, fam in surveyed.iterrows():
        values = {a: int(fam[a]) for a in FAMILY_ATTRIBUTES}
        for a in FAMILY_ATTRIBUTES:
            if rng.random() < 0.15:
                values[a] = redraw_attribute(
                    rng, a, values[a], fam.welfare, ctx.relation, str(fam.kode_wilayah)
                )
        spend = int(np.clip(np.exp(fam.welfare + rng.normal(0, 0.15)), 50_000, 100_000_000))
        when = ctx.day(rng)
        row = {
            "no_kk": fam.no_kk,
            "kode_wilayah": fam.kode_wilayah,
            "tanggal_survei": fmt_date(when),
            **{a: str(v) for a, v in values.items()},
            "pengeluaran_per_kapita": str(spend),
        }
        bps.add("keluarga.csv", row)
        measured[str(fam.no_kk)] = values
        for a, v in values.items():
            state.families.at[idx, a] = v
        state.families.at[idx, "pengeluaran_per_kapita"] = spend
        state.families.at[idx, "tanggal_survei"] = pd.Timestamp(when)
    checked = picker.families(state.families.in_registry, count(rng, int(fams_mask.sum()), RATES["kemensos"]))
    for idx, fam in checked.iterrows():
        hasil = rng.choice(
            ["DITEMUKAN", "TIDAK_DITEMUKAN", "PINDAH", "MENINGGAL"], p=[0.92, 0.04, 0.02, 0.02]
        )
        z = (fam.welfare - np.log(1_200_000)) / 0.55
        layak = int(z + rng.normal(0, 0.5) < -0.5)
        when = ctx.day(rng)
        kemensos.add(
            "groundcheck.csv",
            {
                "no_kk": fam.no_kk,
                "tanggal_kunjungan": fmt_date(when),
                "hasil": str(hasil),
                "layak": str(layak),
                "petugas_id": f"PKH-{ctx.regency}-{rng.integers(1, 400):03d}",
                "catatan": "" if rng.random() < 0.7 else "rumah dikunjungi bersama pendamping",
            },
        )
        state.families.at[idx, "groundcheck_tanggal"] = pd.Timestamp(when)
        state.families.at[idx, "groundcheck_hasil"] = str(hasil)
        state.families.at[idx, "groundcheck_layak"] = layak
    return surveyed, measured


def _family_district(fam) -> str:
    return str(fam["kode_wilayah"])[:6]


def update_rows(
    ctx: RoundContext,
    rng: np.random.Generator,
    state: State,
    picker: Picker,
    sub: SubmissionRows,
    truth_only: list[dict],
) -> None:
    """Rounds 2+: births, deaths, marriages, moves, attribute changes, removals, new families."""
    P, F = state.persons, state.families
    n_persons = int(P.in_registry.sum())
    n_fams = int(F.in_registry.sum())
    ages = pd.Series(ages_on(P, ctx.cutoff), index=P.index)
    nonhead = P.in_registry & (P.hubungan_keluarga != 1) & P.alive
    today = ctx.day

    # Births: to a family with a woman of 18-45 as head or spouse.
    mothers = picker.persons(
        P.in_registry
        & (P.jenis_kelamin == 2)
        & P.hubungan_keluarga.isin([1, 2])
        & (ages >= 18)
        & (ages <= 45),
        count(rng, n_persons, RATES["birth"]),
    )
    children = []
    family_at = _first_index_by(F.no_kk)
    for _, m in mothers.iterrows():
        fam = F.loc[family_at[m.no_kk]]
        child = new_person(ctx, rng, m.no_kk, _family_district(fam), today(rng), bool(rng.random() < 0.5), 3)
        children.append(child)
        picker.touched_persons.add(child["nik"])
        sub.add("anggota.csv", anggota_row("TAMBAH", child))
    if children:
        state.persons = P = pd.concat([P, pd.DataFrame(children)], ignore_index=True)
    ages = pd.Series(ages_on(P, ctx.cutoff), index=P.index)
    nonhead = P.in_registry & (P.hubungan_keluarga != 1) & P.alive

    # Deaths of members who are not the head: most reported by the region, some known only to Dukcapil.
    for reported, rate in ((True, RATES["death_reported"]), (False, RATES["death_unreported"])):
        dead = picker.persons(nonhead & (ages > 50), count(rng, n_persons, rate))
        for idx, p in dead.iterrows():
            when = today(rng)
            P.loc[idx, ["in_registry", "alive"]] = [False, False]
            P.at[idx, "tanggal_meninggal"] = pd.Timestamp(when)
            if reported:
                sub.add("anggota.csv", anggota_row("HAPUS", p, full=False, alasan_hapus="MENINGGAL"))
            else:
                truth_only.append(
                    {
                        "case": "UNREPORTED_DEATH",
                        "key_type": "nik",
                        "key": p.nik,
                        "note": "only Dukcapil records the death; the registry must close the person",
                    }
                )

    # A head dies: the region removes them and names a new head (or removes the family if alone).
    heads = picker.persons(
        P.in_registry & (P.hubungan_keluarga == 1) & (ages > 55), count(rng, n_persons, RATES["head_death"])
    )
    members_at = P.groupby("no_kk", sort=False).indices  # positions; P's index is a RangeIndex
    for idx, h in heads.iterrows():
        family = P.iloc[members_at[h.no_kk]]
        members = family[family.in_registry & (family.nik != h.nik)]
        adults = members[ages.loc[members.index] >= 17]
        if not members.empty and adults.empty:
            picker.touched_persons.discard(h.nik)
            continue
        when = today(rng)
        P.loc[idx, ["in_registry", "alive"]] = [False, False]
        P.at[idx, "tanggal_meninggal"] = pd.Timestamp(when)
        sub.add("anggota.csv", anggota_row("HAPUS", h, full=False, alasan_hapus="MENINGGAL"))
        if members.empty:
            fam_idx = family_at[h.no_kk]
            F.at[fam_idx, "in_registry"] = False
            picker.touched_families.add(h.no_kk)
            sub.add(
                "keluarga.csv",
                keluarga_row(
                    "HAPUS", F.loc[fam_idx], when, with_attributes=False, alasan_hapus="SEMUA_MENINGGAL"
                ),
            )
            continue
        spouse = adults[adults.hubungan_keluarga == 2]
        successor = spouse.iloc[0] if not spouse.empty else adults.loc[ages.loc[adults.index].idxmax()]
        P.at[successor.name, "hubungan_keluarga"] = 1
        picker.touched_persons.add(successor.nik)
        sub.add("anggota.csv", anggota_row("UBAH", successor, full=False, only={"hubungan_keluarga": 1}))

    # A head dies and only Dukcapil knows: the merge must name the successor the way a region would
    # (the spouse, else the oldest remaining member) or close the family if nobody is left.
    quiet_families = F.no_kk[F.in_registry & picker.untouched_family_members()]
    silent = picker.persons(
        P.in_registry & (P.hubungan_keluarga == 1) & (ages > 55) & P.no_kk.isin(quiet_families),
        count(rng, n_persons, RATES["head_death_unreported"]),
    )
    for idx, h in silent.iterrows():
        P.loc[idx, ["in_registry", "alive"]] = [False, False]
        P.at[idx, "tanggal_meninggal"] = pd.Timestamp(today(rng))
        picker.touched_families.add(h.no_kk)
        family = P.iloc[members_at[h.no_kk]]
        rest = family[family.in_registry]
        if rest.empty:
            F.at[family_at[h.no_kk], "in_registry"] = False
            note = "only Dukcapil records the head's death; the family, now empty, must be closed"
        else:
            order = rest.assign(_spouse_first=rest.hubungan_keluarga != 2).sort_values(
                ["_spouse_first", "tanggal_lahir", "nik"]
            )
            P.at[order.index[0], "hubungan_keluarga"] = 1
            picker.touched_persons.update(rest.nik)
            note = "only Dukcapil records the head's death; the spouse (else the oldest member) becomes head"
        truth_only.append({"case": "UNREPORTED_HEAD_DEATH", "key_type": "nik", "key": h.nik, "note": note})

    # Marriage: a young adult leaves to found a family with a spouse not yet in the registry.
    singles = picker.persons(
        nonhead & (P.hubungan_keluarga == 3) & (P.status_perkawinan == 1) & (ages >= 20) & (ages <= 35),
        count(rng, n_persons, RATES["marriage"]),
    )
    pool_adults = (~P.in_registry) & P.alive & (ages >= 20) & (ages <= 40)
    founded: list[dict] = []
    for idx, p in singles.iterrows():
        spouse = picker.persons(pool_adults & (P.jenis_kelamin != p.jenis_kelamin), 1)
        old = F.loc[family_at[p.no_kk]]
        # the family left behind is touched too: no injected case may target it this round
        picker.touched_families.add(p.no_kk)
        if not spouse.empty:
            picker.touched_families.add(spouse.iloc[0].no_kk)
        village = str(rng.choice(ctx.villages))
        kk = new_kk(ctx, rng, village[:6])
        welfare = ctx.relation.moved(float(old.welfare + rng.normal(0, 0.3)), str(old.kode_wilayah), village)
        fam = {
            **{a: old[a] for a in FAMILY_ATTRIBUTES},
            "no_kk": kk,
            "kode_wilayah": village,
            "alamat": f"{rng.choice(ctx.names.streets)} No. {rng.integers(1, 200)}, RT 001/RW 001",
            "welfare": welfare,
            "in_registry": True,
            "tanggal_pendataan": pd.Timestamp(today(rng)),
            "pengeluaran_per_kapita": np.nan,
            "tanggal_survei": pd.NaT,
            "groundcheck_tanggal": pd.NaT,
            "groundcheck_hasil": None,
            "groundcheck_layak": np.nan,
        }
        fam["luas_lantai_m2"] = int(np.clip(old.luas_lantai_m2 * 0.7, 6, 1500))
        founded.append(fam)
        picker.touched_families.add(kk)
        sub.add("keluarga.csv", keluarga_row("TAMBAH", fam, fam["tanggal_pendataan"]))
        P.loc[idx, ["no_kk", "hubungan_keluarga", "status_perkawinan"]] = [kk, 1, 2]
        sub.add(
            "anggota.csv",
            anggota_row(
                "UBAH", p, no_kk=kk, full=False, only={"hubungan_keluarga": 1, "status_perkawinan": 2}
            ),
        )
        if not spouse.empty:
            s_idx = spouse.index[0]
            P.loc[s_idx, ["no_kk", "hubungan_keluarga", "status_perkawinan", "in_registry"]] = [
                kk,
                2,
                2,
                True,
            ]
            sub.add("anggota.csv", anggota_row("TAMBAH", P.loc[s_idx]))
    if founded:
        state.families = F = pd.concat([F, pd.DataFrame(founded)], ignore_index=True)

    # Whole families moving to another village of the regency; attribute changes; removals.
    for idx, _fam in picker.families(
        F.in_registry & picker.untouched_family_members(), count(rng, n_fams, RATES["move_village"])
    ).iterrows():
        village = str(rng.choice(ctx.villages))
        when = today(rng)
        F.loc[idx, ["kode_wilayah", "tanggal_pendataan"]] = [village, pd.Timestamp(when)]
        sub.add("keluarga.csv", keluarga_row("UBAH", F.loc[idx], when, with_attributes=False))
    for idx, fam in picker.families(F.in_registry, count(rng, n_fams, RATES["attribute_change"])).iterrows():
        changed = list(rng.choice(FAMILY_ATTRIBUTES, int(rng.integers(1, 4)), replace=False))
        for a in changed:
            F.at[idx, a] = redraw_attribute(
                rng, a, int(fam[a]), fam.welfare, ctx.relation, str(fam.kode_wilayah)
            )
        when = today(rng)
        F.at[idx, "tanggal_pendataan"] = pd.Timestamp(when)
        sub.add("keluarga.csv", keluarga_row("UBAH", F.loc[idx], when, only=changed))
    for idx, p in picker.persons(nonhead, count(rng, n_persons, RATES["member_change"])).iterrows():
        if p.pendidikan_tertinggi < 6 and rng.random() < 0.5:
            change = {"pendidikan_tertinggi": int(p.pendidikan_tertinggi) + 1}
        else:
            change = {"status_pekerjaan": int(rng.choice([v for v in range(5) if v != p.status_pekerjaan]))}
        for k, v in change.items():
            P.at[idx, k] = v
        sub.add("anggota.csv", anggota_row("UBAH", P.loc[idx], full=False, only=change))
    members_at = P.groupby("no_kk", sort=False).indices  # regrouped: marriages moved people
    for idx, fam in picker.families(
        F.in_registry & picker.untouched_family_members(), count(rng, n_fams, RATES["removal"])
    ).iterrows():
        alasan = str(rng.choice(["PINDAH", "DUPLIKAT", "TIDAK_DITEMUKAN", "MAMPU"]))
        F.at[idx, "in_registry"] = False
        family = P.iloc[members_at.get(fam.no_kk, [])]
        members = family[family.in_registry]
        for m_idx, m in members.iterrows():
            P.at[m_idx, "in_registry"] = False
            picker.touched_persons.add(m.nik)
            sub.add(
                "anggota.csv", anggota_row("HAPUS", m, full=False, alasan_hapus=ALASAN_ANGGOTA_FOR[alasan])
            )
        sub.add(
            "keluarga.csv", keluarga_row("HAPUS", fam, today(rng), with_attributes=False, alasan_hapus=alasan)
        )

    # New families: households known to Dukcapil but never in the registry are registered.
    pool_fams = picker.families(
        (~F.in_registry) & F.pool & picker.untouched_family_members(), count(rng, n_fams, RATES["new_family"])
    )
    for idx, fam in pool_fams.iterrows():
        family = P.iloc[members_at.get(fam.no_kk, [])]
        members = family[family.alive & ~family.in_registry]
        if (members.hubungan_keluarga == 1).sum() != 1:
            continue
        when = today(rng)
        F.loc[idx, ["in_registry", "pool", "tanggal_pendataan"]] = [True, False, pd.Timestamp(when)]
        sub.add("keluarga.csv", keluarga_row("TAMBAH", F.loc[idx], when))
        for m_idx, m in members.iterrows():
            P.at[m_idx, "in_registry"] = True
            picker.touched_persons.add(m.nik)
            sub.add("anggota.csv", anggota_row("TAMBAH", m))
