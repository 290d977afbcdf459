"""Integrity schemes with ground truth (issue 15's measurement; only with `--schemes`).

- a village surge: one village of a regency gets many new family cards, each a member split off an
  existing family (the regency's own submission carries them, as a village's data entry would);
- an account scheme: a second submission of the regency, by its own account, splits members off
  families across many villages, one or two per village (no village stands out, the account does);
- contradictory families: poor families whose data gains a car, air conditioning or a member
  employed as ASN, as an inclusion error looks in the registry.
Every scheme record goes to truth/<round>/skema_integritas.csv. Nothing here is drawn unless
`--schemes` is given, so worlds generated without it (the sample) do not change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dtsen.domain.codes import FAMILY_ATTRIBUTES
from dtsen_dev.generate.rows import SubmissionRows, anggota_row, keluarga_row
from dtsen_dev.generate.world import Picker, RoundContext, State, ages_on, new_kk

TRUTH_COLUMNS = ["scheme", "kode_kabupaten", "kode_wilayah", "akun", "no_kk", "rule"]
VILLAGE_SURGE_CHANCE = 0.5  # per regency and round
VILLAGE_SURGE_SIZE = (10, 25)  # split-off families in the village
ACCOUNT_SCHEME_CHANCE = 0.3
ACCOUNT_SCHEME_SIZE = (15, 31)
CONTRADICTION_RATE = 0.002  # of the regency's families, per round
CONTRADICTIONS = {"mobil": ("punya_mobil", 1), "ac": ("punya_ac", 1)}  # plus anggota_asn_bumn


def scheme_account(ctx: RoundContext) -> str:
    return f"operator.{ctx.regency}.lapangan"


def scheme_submission_id(ctx: RoundContext) -> str:
    return f"{ctx.regency}-{ctx.round_id.replace('-', '')}-07"


def _movers(
    ctx: RoundContext, rng: np.random.Generator, state: State, picker: Picker, n: int, village: str | None
):
    """Adult non-heads of untouched families of three or more, preferring `village`'s families."""
    P, F = state.persons, state.families
    ages = pd.Series(ages_on(P, ctx.cutoff), index=P.index)
    sizes = P[P.in_registry].groupby("no_kk").size()
    big = set(sizes[sizes >= 3].index)
    busy = set(F.no_kk[F.no_kk.isin(picker.touched_families)])
    eligible = (
        P.in_registry
        & P.alive
        & (P.hubungan_keluarga != 1)
        & (ages >= 17)
        & P.no_kk.isin(big)
        & ~P.no_kk.isin(busy)
    )
    chosen = []
    if village is not None:
        here = set(F.no_kk[F.in_registry & (F.kode_wilayah == village)])
        local = picker.persons(eligible & P.no_kk.isin(here), n)
        chosen.append(local)
        n -= len(local)
    if n > 0:
        chosen.append(picker.persons(eligible, n))
    movers = pd.concat(chosen) if chosen else P.iloc[:0]
    return movers.drop_duplicates("no_kk")  # one member per family: the family left keeps its head


def _split_off(
    ctx: RoundContext,
    rng: np.random.Generator,
    state: State,
    picker: Picker,
    idx,
    village: str,
    sub: SubmissionRows,
    founded: list[dict],
) -> str:
    P, F = state.persons, state.families
    p = P.loc[idx]
    old = F.loc[F.index[F.no_kk == p.no_kk][0]]
    picker.touched_families.add(p.no_kk)
    kk = new_kk(ctx, rng, village[:6])
    when = ctx.day(rng)
    fam = {
        **{a: old[a] for a in FAMILY_ATTRIBUTES},
        "no_kk": kk,
        "kode_wilayah": village,
        "alamat": f"{rng.choice(ctx.names.streets)} No. {rng.integers(1, 200)}, RT 002/RW 003",
        "welfare": ctx.relation.moved(float(old.welfare), str(old.kode_wilayah), village),
        "in_registry": True,
        "tanggal_pendataan": pd.Timestamp(when),
        "pengeluaran_per_kapita": np.nan,
        "tanggal_survei": pd.NaT,
        "groundcheck_tanggal": pd.NaT,
        "groundcheck_hasil": None,
        "groundcheck_layak": np.nan,
    }
    founded.append(fam)
    picker.touched_families.add(kk)
    sub.add("keluarga.csv", keluarga_row("TAMBAH", fam, fam["tanggal_pendataan"]))
    P.loc[idx, ["no_kk", "hubungan_keluarga"]] = [kk, 1]
    sub.add("anggota.csv", anggota_row("UBAH", p, no_kk=kk, full=False, only={"hubungan_keluarga": 1}))
    return kk


def _append(state: State, founded: list[dict]) -> None:
    if founded:
        state.families = pd.concat([state.families, pd.DataFrame(founded)], ignore_index=True)


def village_surge(
    ctx: RoundContext, rng: np.random.Generator, state: State, picker: Picker, sub: SubmissionRows
) -> list[dict]:
    if rng.random() >= VILLAGE_SURGE_CHANCE:
        return []
    F = state.families
    lived = F.kode_wilayah[F.in_registry].value_counts()
    village = str(rng.choice(lived.index[: max(1, len(lived) // 2)]))  # a populated village
    founded: list[dict] = []
    truth = []
    for idx in _movers(ctx, rng, state, picker, int(rng.integers(*VILLAGE_SURGE_SIZE)), village).index:
        kk = _split_off(ctx, rng, state, picker, idx, village, sub, founded)
        truth.append(
            {"scheme": "VILLAGE_SURGE", "kode_wilayah": village, "akun": f"dinsos.{ctx.regency}", "no_kk": kk}
        )
    _append(state, founded)
    return truth


def account_scheme(
    ctx: RoundContext, rng: np.random.Generator, state: State, picker: Picker
) -> tuple[SubmissionRows | None, list[dict]]:
    if rng.random() >= ACCOUNT_SCHEME_CHANCE:
        return None, []
    sub = SubmissionRows("pemda", scheme_submission_id(ctx))
    founded: list[dict] = []
    truth = []
    movers = _movers(ctx, rng, state, picker, int(rng.integers(*ACCOUNT_SCHEME_SIZE)), None)
    villages = rng.choice(ctx.villages, len(movers), replace=len(movers) > len(ctx.villages))
    for idx, village in zip(movers.index, villages, strict=True):
        kk = _split_off(ctx, rng, state, picker, idx, str(village), sub, founded)
        truth.append(
            {
                "scheme": "ACCOUNT_SCHEME",
                "kode_wilayah": str(village),
                "akun": scheme_account(ctx),
                "no_kk": kk,
            }
        )
    _append(state, founded)
    return sub, truth


def contradictions(
    ctx: RoundContext, rng: np.random.Generator, state: State, picker: Picker, sub: SubmissionRows
) -> list[dict]:
    """Poor families (the poorest fifth by hidden welfare) whose data gains a car, air conditioning or
    a member employed as ASN: what an inclusion error looks like in the registry."""
    P, F = state.persons, state.families
    live = F.in_registry
    poor = live & (F.welfare <= F.welfare[live].quantile(0.2))
    n = int(rng.binomial(int(live.sum()), CONTRADICTION_RATE))
    truth = []
    members_at = P[P.in_registry].groupby("no_kk").indices
    ages = pd.Series(ages_on(P, ctx.cutoff), index=P.index)
    for idx, fam in picker.families(poor & picker.untouched_family_members(), n).iterrows():
        rule = str(rng.choice(["mobil", "ac", "anggota_asn_bumn"]))
        when = ctx.day(rng)
        if rule == "anggota_asn_bumn":
            adults = [i for i in P[P.in_registry].index[members_at.get(fam.no_kk, [])] if 20 <= ages[i] <= 55]
            if not adults:
                continue
            m = adults[0]
            P.at[m, "status_pekerjaan"] = 5
            picker.touched_persons.add(P.at[m, "nik"])
            sub.add("anggota.csv", anggota_row("UBAH", P.loc[m], full=False, only={"status_pekerjaan": 5}))
        else:
            column, value = CONTRADICTIONS[rule]
            if int(fam[column]) == value:
                continue
            F.at[idx, column] = value
            F.at[idx, "tanggal_pendataan"] = pd.Timestamp(when)
            sub.add("keluarga.csv", keluarga_row("UBAH", F.loc[idx], when, only=[column]))
        truth.append(
            {
                "scheme": "CONTRADICTION",
                "kode_wilayah": str(fam.kode_wilayah),
                "akun": "",
                "no_kk": str(fam.no_kk),
                "rule": rule,
            }
        )
    return truth
