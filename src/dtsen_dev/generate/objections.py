"""Households' objections and proposals (aduan.csv, issue 26) with their truth, and the Kemensos field
visits that answer them a round later.

Per round after the first, a share of each regency's registered families is objected to or proposed
(`--aduan SHARE`), from the channel's one national submission `aduan/cekbansos-<round>-01/`:
- SANGGAH pbi_jk MAMPU ("well off"): true of a family whose hidden welfare is high, false of a poor one
  (both happen); a true one is often reported by several households (identical rows, counted);
- SANGGAH pbi_jk TIDAK_DIKENAL ("nobody of that name lives there"): true or not, as drawn;
- USUL KONDISI_MEMBURUK (registered, by a member's NIK): true of a poor family;
- USUL BELUM_TERDAFTAR: a household Dukcapil knows and the registry does not, with its village;
- a few bad rows with the codes they must be rejected with (in cases.csv, as every injected row).
Each accepted row's truth is in truth/<round>/aduan.csv (`claim_holds`). A registered family objected
to this round is visited by Kemensos in the next round (its groundcheck.csv): the visit finds what is
true (`hasil`, `layak` from the hidden welfare), written to truth/<round>/kunjungan_aduan.csv with the
case outcome it implies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dtsen.contract import ADUAN
from dtsen_dev.generate.rows import SubmissionRows

TRUTH_COLUMNS = ["round_id", "submission_id", "pelapor_ref", "jenis", "alasan", "no_kk", "claim_holds"]
VISIT_COLUMNS = ["round_id", "no_kk", "hasil", "layak", "expected_outcome", "objected_in"]
POVERTY_LINE = np.log(1_200_000)


def submission_id(round_id: str) -> str:
    return f"cekbansos-{round_id.replace('-', '')}-01"


def _z(welfare: pd.Series | float):
    return (welfare - POVERTY_LINE) / 0.55


def _row(**values: str) -> dict:
    return {c: "" for c in ADUAN.columns} | values


def remember(state) -> None:
    """The families' columns this module keeps between rounds (the claim awaiting its visit)."""
    for column in ("aduan_claim", "aduan_round"):
        if column not in state.families:
            state.families[column] = pd.Series([None] * len(state.families), dtype=object)


class Objections:
    """The round's objections, regency by regency, into one national submission."""

    def __init__(self, round_id: str, share: float):
        self.round_id = round_id
        self.share = share
        self.sub = SubmissionRows("aduan", submission_id(round_id))
        self.truth: list[dict] = []
        self.visits: list[dict] = []
        self._n = 0

    def _ref(self) -> str:
        self._n += 1
        return f"CB-{self.round_id}-{self._n:06d}"

    def _add(self, row: dict, claim_holds: bool, **bad: str) -> None:
        self.sub.add("aduan.csv", row, **bad)
        if not bad:
            self.truth.append(
                {
                    "round_id": self.round_id,
                    "submission_id": self.sub.submission_id,
                    "pelapor_ref": row["pelapor_ref"],
                    "jenis": row["jenis"],
                    "alasan": row["alasan"],
                    "no_kk": row["no_kk"] or "",
                    "claim_holds": int(claim_holds),
                }
            )

    def visit(self, rng: np.random.Generator, state, kemensos: SubmissionRows, day, picker) -> None:
        """Kemensos visits the families objected to last round that are still registered and that
        nothing else changed this round (not checked already, no region's row): what it finds is the
        truth of the objection. A family changed this round is visited in a later one."""
        fams = state.families
        already = {str(r.row["no_kk"]) for r in kemensos.files.get("groundcheck.csv", [])}
        busy = set(map(str, picker.touched_families)) | set(
            map(str, state.persons.loc[state.persons.nik.isin(picker.touched_persons), "no_kk"])
        )
        due = fams[fams.in_registry & fams.aduan_claim.notna() & ~fams.no_kk.astype(str).isin(already | busy)]
        for idx, fam in due.iterrows():
            gone = fam.aduan_claim == "TIDAK_DIKENAL:1"
            hasil = "TIDAK_DITEMUKAN" if gone else "DITEMUKAN"
            layak = int(_z(fam.welfare) + rng.normal(0, 0.5) < -0.5)
            when = day(rng)
            kemensos.add(
                "groundcheck.csv",
                {
                    "no_kk": fam.no_kk,
                    "tanggal_kunjungan": when.isoformat(),
                    "hasil": hasil,
                    "layak": str(layak),
                    "petugas_id": f"PKH-ADUAN-{rng.integers(1, 400):03d}",
                    "catatan": "kunjungan atas sanggahan/usulan warga",
                },
            )
            fams.at[idx, "groundcheck_tanggal"] = pd.Timestamp(when)
            fams.at[idx, "groundcheck_hasil"] = hasil
            fams.at[idx, "groundcheck_layak"] = layak
            self.visits.append(
                {
                    "round_id": self.round_id,
                    "no_kk": fam.no_kk,
                    "hasil": hasil,
                    "layak": layak,
                    "expected_outcome": "NOT_FOUND" if gone else ("CORRECTED" if layak == 0 else "CONFIRMED"),
                    "objected_in": fam.aduan_round,
                }
            )
        fams.loc[due.index, ["aduan_claim", "aduan_round"]] = None

    def raise_(self, rng: np.random.Generator, state, picker) -> None:
        """This regency's objections and proposals of the round, about registered families the round
        changed nothing of (the picker's touched sets: so the case is the family the truth names),
        remembered on the families for the next round's visits."""
        fams, persons = state.families, state.persons
        busy = set(map(str, picker.touched_families)) | set(
            map(str, persons.loc[persons.nik.isin(picker.touched_persons), "no_kk"])
        )
        registered = fams[fams.in_registry & fams.aduan_claim.isna() & ~fams.no_kk.astype(str).isin(busy)]
        n = int(rng.binomial(len(registered), self.share)) if len(registered) else 0
        if n == 0:
            return
        chosen = registered.iloc[np.sort(rng.choice(len(registered), min(n, len(registered)), replace=False))]
        for idx, fam in chosen.iterrows():
            kind, z, kk = rng.random(), float(_z(fam.welfare)), str(fam.no_kk)
            if kind < 0.5:  # well off: true of a family above the line, false of one below
                holds = z > 0.5
                reports = 1 + (int(rng.integers(0, 3)) if holds else 0)
                for _ in range(reports):
                    self._add(
                        _row(
                            jenis="SANGGAH",
                            no_kk=kk,
                            program="pbi_jk",
                            alasan="MAMPU",
                            tanggal_aduan=self._day(rng),
                            pelapor_ref=self._ref(),
                        ),
                        holds,
                    )
                claim = "MAMPU"
            elif kind < 0.65:  # nobody of that name lives there: true or a neighbour's mistake
                holds = rng.random() < 0.5
                self._add(
                    _row(
                        jenis="SANGGAH",
                        no_kk=kk,
                        program="pbi_jk",
                        alasan="TIDAK_DIKENAL",
                        tanggal_aduan=self._day(rng),
                        pelapor_ref=self._ref(),
                    ),
                    holds,
                )
                claim = f"TIDAK_DIKENAL:{int(holds)}"
            else:  # worse off than the registry says: by a member's NIK
                members = persons[(persons.no_kk == fam.no_kk) & persons.in_registry & persons.alive]
                if members.empty:
                    continue
                nik = str(members.nik.iloc[int(rng.integers(0, len(members)))])
                self._add(
                    _row(
                        jenis="USUL",
                        nik=nik,
                        alasan="KONDISI_MEMBURUK",
                        tanggal_aduan=self._day(rng),
                        pelapor_ref=self._ref(),
                    ),
                    z < -0.5,
                )
                self.truth[-1]["no_kk"] = kk
                claim = "KONDISI_MEMBURUK"
            fams.at[idx, "aduan_claim"] = claim
            fams.at[idx, "aduan_round"] = self.round_id
        pool = fams[~fams.in_registry & fams.pool]
        for _, fam in pool.iloc[: max(1, n // 10)].iterrows():  # households not registered yet
            self._add(
                _row(
                    jenis="USUL",
                    no_kk=str(fam.no_kk),
                    kode_wilayah=str(fam.kode_wilayah),
                    alasan="BELUM_TERDAFTAR",
                    tanggal_aduan=self._day(rng),
                    pelapor_ref=self._ref(),
                ),
                True,
            )
        self._bad_rows(rng, chosen, pool)

    def _bad_rows(self, rng: np.random.Generator, chosen: pd.DataFrame, pool: pd.DataFrame) -> None:
        """One row of each kind the channel gets wrong, now and then (about one objection in 25)."""
        if rng.random() > min(1.0, len(chosen) / 25):
            return
        kk = str(chosen.no_kk.iloc[0])
        day = self._day(rng)
        self._add(
            _row(jenis="SANGGAH", no_kk=kk, alasan="MAMPU", tanggal_aduan=day, pelapor_ref=self._ref()),
            False,
            case="ADUAN_NO_PROGRAM",
            codes="REQUIRED_MISSING",
            key_type="no_kk",
        )
        self._add(
            _row(
                jenis="SANGGAH",
                no_kk=kk,
                program="pbi_jk",
                alasan="BELUM_TERDAFTAR",
                tanggal_aduan=day,
                pelapor_ref=self._ref(),
            ),
            False,
            case="ADUAN_REASON_OF_OTHER_KIND",
            codes="CODE_OUT_OF_DOMAIN",
            key_type="no_kk",
        )
        if not pool.empty:
            self._add(
                _row(
                    jenis="SANGGAH",
                    no_kk=str(pool.no_kk.iloc[-1]),
                    program="pbi_jk",
                    alasan="MAMPU",
                    tanggal_aduan=day,
                    pelapor_ref=self._ref(),
                ),
                False,
                case="ADUAN_FAMILY_NOT_REGISTERED",
                codes="RECORD_NOT_FOUND",
                key_type="no_kk",
            )

    def _day(self, rng: np.random.Generator) -> str:
        year, q = int(self.round_id[:4]), int(self.round_id[-1])
        return f"{year}-{3 * q - 2 + int(rng.integers(0, 2)):02d}-{int(rng.integers(1, 28)):02d}"
