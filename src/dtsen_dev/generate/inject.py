"""Injected cases: rows the pipeline must reject, each with exactly the code(s) the truth lists.

Every injected row carries one defect and targets records no clean event touches this round, so a
rejection never changes what the registry should look like. Rules the truth follows (docs/generator.md):
row-level format checks come first and cross-row checks only see rows that passed them; members of a
family whose own row was rejected get FAMILY_UNKNOWN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dtsen.domain.codes import FAMILY_ATTRIBUTES
from dtsen_dev.generate.names import spelling_variant
from dtsen_dev.generate.numbers import compose
from dtsen_dev.generate.rows import SubmissionRows, anggota_row, keluarga_row
from dtsen_dev.generate.world import Picker, RoundContext, State, ages_on, redraw_attribute

ROUND1_CODES = (
    "REQUIRED_MISSING",
    "NIK_FORMAT",
    "NIK_MISMATCH",
    "KK_FORMAT",
    "WILAYAH_UNKNOWN",
    "WILAYAH_OUT_OF_SCOPE",
    "CODE_OUT_OF_DOMAIN",
    "DATE_INVALID",
    "DUPLICATE_IN_FILE",
    "FAMILY_UNKNOWN",
    "FAMILY_STRUCTURE",
    "NIK_NOT_IN_DUKCAPIL",
    "NIK_DECEASED",
)
LATER_CODES = ROUND1_CODES + ("RECORD_NOT_FOUND", "RECORD_EXISTS", "CONFLICT_LOST")
BAD_NIKS = (
    lambda n: n[:15],
    lambda n: n[:10] + "AB" + n[12:],
    lambda n: n[:12] + "0000",
    lambda n: n[:6] + "32" + n[8:],
    lambda n: n[:8] + "13" + n[10:],
    lambda n: "1234567890123456",
    lambda n: "99" + n[2:],
)


class Injector:
    def __init__(
        self,
        ctx: RoundContext,
        rng: np.random.Generator,
        state: State,
        picker: Picker,
        sub: SubmissionRows,
        surveyed: pd.DataFrame,
        bps_values: dict[str, dict],
    ):
        self.ctx, self.rng, self.state, self.picker, self.sub = ctx, rng, state, picker, sub
        self.surveyed = surveyed
        self.bps_values = bps_values
        self.used_conflicts: set[str] = set()
        P, F = state.persons, state.families
        self.ages = pd.Series(ages_on(P, ctx.cutoff), index=P.index)
        # Candidate queues, shuffled once: picking a target is O(1), not a scan of the regency.
        self.queues = {
            "pool_alive": self._queue(P, (~P.in_registry) & P.alive & (self.ages >= 1)),
            "pool_dead": self._queue(P, (~P.in_registry) & ~P.alive),
            "nonhead": self._queue(P, P.in_registry & P.alive & (P.hubungan_keluarga != 1)),
            "family": self._queue(F, F.in_registry),
            "pool_family": self._queue(F, (~F.in_registry) & F.pool),
        }
        busy = P.loc[P.nik.isin(picker.touched_persons), "no_kk"]
        self.busy_families = set(busy) | set(picker.touched_families)
        self.members = P[P.alive].groupby("no_kk").groups

    def _queue(self, frame: pd.DataFrame, mask: pd.Series) -> list:
        idx = list(frame.index[mask.to_numpy()])
        self.rng.shuffle(idx)
        return idx

    def _next_person(self, queue: str) -> pd.Series | None:
        P, q = self.state.persons, self.queues[queue]
        while q:
            p = P.loc[q.pop()]
            if p.nik not in self.picker.touched_persons and p.no_kk not in self.picker.touched_families:
                self.picker.touched_persons.add(p.nik)
                self.busy_families.add(p.no_kk)
                return p
        return None

    def _next_family(self, queue: str) -> pd.Series | None:
        F, q = self.state.families, self.queues[queue]
        while q:
            fam = F.loc[q.pop()]
            if fam.no_kk not in self.busy_families and fam.no_kk not in self.picker.touched_families:
                self.picker.touched_families.add(fam.no_kk)
                self.busy_families.add(fam.no_kk)
                return fam
        return None

    # --- targets ---------------------------------------------------------------------------------
    def pool_person(self, *, alive: bool = True) -> pd.Series | None:
        return self._next_person("pool_alive" if alive else "pool_dead")

    def family(self) -> pd.Series | None:
        return self._next_family("family")

    def nonhead(self) -> pd.Series | None:
        return self._next_person("nonhead")

    def pool_family(self, min_members: int = 1) -> tuple[pd.Series, pd.DataFrame] | None:
        P = self.state.persons
        for _ in range(10):
            fam = self._next_family("pool_family")
            if fam is None:
                return None
            members = P.loc[self.members.get(fam.no_kk, [])]
            touched = self.picker.touched_persons
            members = members[
                ~members.in_registry.to_numpy()
                & np.array([n not in touched for n in members.nik], dtype=bool)
            ]
            if len(members) >= min_members and (members.hubungan_keluarga == 1).sum() == 1:
                self.picker.touched_persons.update(members.nik)
                return fam, members
        return None

    def unused_kk(self, district: str) -> str:
        issued = np.array([np.datetime64(self.ctx.day(self.rng), "D")])
        didx = np.array([self.ctx.kk_counters.index[district]])
        return str(compose(np.array([district]), issued, self.ctx.kk_counters.allocate(didx, issued))[0])

    def as_member(self, person: pd.Series, fam_kk: str, hub: int = 3) -> pd.Series:
        p = person.copy()
        p["no_kk"], p["hubungan_keluarga"] = fam_kk, hub
        return p

    # --- one case per call -------------------------------------------------------------------------
    def add_member(self, code: str, case: str, row: dict, key: str, **extra: str) -> None:
        if extra.get("true_nik"):
            # a clerk who mistypes a NIK often misspells the name too: repair must see through it
            row["nama"] = spelling_variant(row["nama"], int(extra["true_nik"]))
        self.sub.add("anggota.csv", row, case=case, codes=code, key_type="nik", **extra)

    def noise_family(self, code: str, case: str, mutate) -> bool:
        """A household from the Dukcapil-only pool added with one family-row defect; its members
        cascade to FAMILY_UNKNOWN (or carry the same KK defect)."""
        got = self.pool_family()
        if got is None:
            return False
        fam, members = got
        row = keluarga_row("TAMBAH", fam, self.ctx.day(self.rng))
        mutate(row)
        self.sub.add("keluarga.csv", row, case=case, codes=code, key_type="no_kk")
        member_code = "KK_FORMAT" if code == "KK_FORMAT" else "FAMILY_UNKNOWN"
        for _, m in members.iterrows():
            self.sub.add(
                "anggota.csv",
                anggota_row("TAMBAH", m, no_kk=row["no_kk"]),
                case=f"{case}_MEMBER",
                codes=member_code,
                key_type="nik",
            )
        return True

    def family_update(self, code: str, case: str, mutate) -> bool:
        fam = self.family()
        if fam is None:
            return False
        attr = str(self.rng.choice(FAMILY_ATTRIBUTES))
        row = keluarga_row(
            "UBAH",
            {
                **fam.to_dict(),
                attr: redraw_attribute(
                    self.rng, attr, int(fam[attr]), fam.welfare, self.ctx.relation, str(fam.kode_wilayah)
                ),
            },
            self.ctx.day(self.rng),
            only=[attr],
        )
        mutate(row)
        self.sub.add("keluarga.csv", row, case=case, codes=code, key_type="no_kk")
        return True

    def inject(self, code: str, first_round: bool) -> bool:
        ctx, rng = self.ctx, self.rng
        fam = None
        if (
            code
            in (
                "REQUIRED_MISSING",
                "NIK_FORMAT",
                "NIK_MISMATCH",
                "KK_FORMAT",
                "CODE_OUT_OF_DOMAIN",
                "DATE_INVALID",
                "FAMILY_UNKNOWN",
                "NIK_DECEASED",
                "NIK_NOT_IN_DUKCAPIL",
            )
            and rng.random() < 0.6
        ):
            fam = self.family()
            if fam is None:
                return False
            person = self.pool_person(alive=code != "NIK_DECEASED") if code != "NIK_NOT_IN_DUKCAPIL" else None
            if person is None and code != "NIK_NOT_IN_DUKCAPIL":
                return False
            if code == "NIK_DECEASED" and not first_round:
                fam = None  # later rounds: an unreported death the region still updates (below)
            elif code == "NIK_NOT_IN_DUKCAPIL":
                return self._not_in_dukcapil(fam)
            else:
                row = anggota_row("TAMBAH", self.as_member(person, fam.no_kk))
                extra = {}
                if code == "REQUIRED_MISSING":
                    row["nama"] = ""
                elif code == "NIK_FORMAT":
                    row["nik"] = BAD_NIKS[int(rng.integers(len(BAD_NIKS)))](row["nik"])
                elif code == "NIK_MISMATCH":
                    day = int(row["nik"][6:8])
                    typo = day - 1 if day % 40 > 27 else day + 1
                    row["nik"] = row["nik"][:6] + f"{typo:02d}" + row["nik"][8:]
                    extra = {"true_nik": person.nik, "note": "birth-day digits of the NIK mistyped"}
                elif code == "KK_FORMAT":
                    row["no_kk"] = row["no_kk"][:15]
                elif code == "CODE_OUT_OF_DOMAIN":
                    row["pendidikan_tertinggi"] = "7"
                elif code == "DATE_INVALID":
                    row["tanggal_lahir"] = str(rng.choice(["2026-02-30", "14/02/2026", "2025-13-01"]))
                elif code == "FAMILY_UNKNOWN":
                    row["no_kk"] = self.unused_kk(str(fam.kode_wilayah)[:6])
                self.add_member(code, f"INJECT_{code}", row, person.nik, **extra)
                return True
        if code == "NIK_DECEASED":
            if first_round:
                person = self.pool_person(alive=False)
                fam = self.family()
                if person is None or fam is None:
                    return False
                self.add_member(
                    code,
                    "OLD_REGISTRY_LISTS_DEAD",
                    anggota_row("TAMBAH", self.as_member(person, fam.no_kk)),
                    person.nik,
                )
                return True
            p = self.nonhead()
            if p is None:
                return False
            P = self.state.persons
            idx = P.index[P.nik == p.nik][0]
            P.loc[idx, ["in_registry", "alive"]] = [False, False]
            P.at[idx, "tanggal_meninggal"] = pd.Timestamp(ctx.day(rng))
            row = anggota_row("UBAH", p, full=False, only={"status_pekerjaan": 0})
            self.add_member(
                code,
                "UPDATE_OF_DECEASED",
                row,
                p.nik,
                note="Dukcapil records the death; registry must close the person",
            )
            return True
        if code in (
            "NIK_FORMAT",
            "NIK_MISMATCH",
            "REQUIRED_MISSING",
            "CODE_OUT_OF_DOMAIN",
            "DATE_INVALID",
            "KK_FORMAT",
            "FAMILY_UNKNOWN",
            "NIK_NOT_IN_DUKCAPIL",
        ):
            return self.inject_family_level(code, first_round)
        return self.inject_family_level(code, first_round)

    def _not_in_dukcapil(self, fam: pd.Series) -> bool:
        ctx, rng = self.ctx, self.rng
        district = str(fam.kode_wilayah)[:6]
        person = self.pool_person() if rng.random() < 0.5 else None
        if person is not None:
            # a typo in the serial of a real person's NIK, to an unallocated serial
            nik = person.nik[:12] + f"{min(int(person.nik[12:]) + 5000, 9999):04d}"
            row = anggota_row("TAMBAH", self.as_member(person, fam.no_kk))
            row["nik"] = nik
            self.add_member(
                "NIK_NOT_IN_DUKCAPIL",
                "NIK_SERIAL_TYPO",
                row,
                nik,
                true_nik=person.nik,
                note="serial digits mistyped; the person is in Dukcapil under true_nik",
            )
            return True
        born = ctx.cutoff - pd.Timedelta(days=int(rng.integers(1, 30)))
        female = bool(rng.random() < 0.5)
        didx = np.array([ctx.nik_counters.index[district]])
        dates = np.array([np.datetime64(born, "D")])
        nik = str(
            compose(
                np.array([district]), dates, ctx.nik_counters.allocate(didx, dates), female=np.array([female])
            )[0]
        )
        child = {
            "nik": nik,
            "no_kk": fam.no_kk,
            "hubungan_keluarga": 3,
            "nama": "Bayi " + str(fam.alamat)[:3],
            "jenis_kelamin": 2 if female else 1,
            "tanggal_lahir": pd.Timestamp(born),
            "status_perkawinan": 1,
            "pendidikan_tertinggi": 0,
            "status_sekolah": 0,
            "status_pekerjaan": 0,
            "disabilitas": 0,
            "penyakit_kronis": 0,
        }
        self.add_member(
            "NIK_NOT_IN_DUKCAPIL",
            "BIRTH_NOT_YET_REGISTERED",
            anggota_row("TAMBAH", child),
            nik,
            note="newborn not yet in the civil registry",
        )
        return True

    def inject_family_level(self, code: str, first_round: bool) -> bool:
        ctx, rng = self.ctx, self.rng
        out_of_scope = str(rng.choice(ctx.other_villages)) if len(ctx.other_villages) else None
        mutations = {
            "REQUIRED_MISSING": lambda r: (
                r.update(alamat="") if r["operasi"] == "TAMBAH" else r.update(tanggal_pendataan="")
            ),
            "KK_FORMAT": lambda r: r.update(no_kk=r["no_kk"][:12] + "0000"),
            "WILAYAH_UNKNOWN": lambda r: r.update(kode_wilayah=r["kode_wilayah"][:6] + "9999"),
            "WILAYAH_OUT_OF_SCOPE": lambda r: r.update(kode_wilayah=out_of_scope),
            "CODE_OUT_OF_DOMAIN": lambda r: r.update(jenis_lantai="12"),
            "DATE_INVALID": lambda r: r.update(
                tanggal_pendataan=str(rng.choice(["2099-01-01", "1899-12-31", "2026-02-30"]))
            ),
        }
        if code == "WILAYAH_OUT_OF_SCOPE" and out_of_scope is None:
            return False
        if code in mutations:
            if first_round:
                return self.noise_family(code, f"INJECT_{code}", mutations[code])
            return self.family_update(code, f"INJECT_{code}", mutations[code])
        if code == "DUPLICATE_IN_FILE":
            if first_round or rng.random() < 0.5:
                fam = self.family()
                person = self.pool_person()
                if fam is None or person is None:
                    return False
                row = anggota_row("TAMBAH", self.as_member(person, fam.no_kk))
                for _ in range(2):
                    self.add_member(code, "SAME_NIK_TWICE", dict(row), person.nik)
                return True
            fam = self.family()
            if fam is None:
                return False
            attr = str(rng.choice(FAMILY_ATTRIBUTES))
            row = keluarga_row(
                "UBAH",
                {
                    **fam.to_dict(),
                    attr: redraw_attribute(
                        rng, attr, int(fam[attr]), fam.welfare, ctx.relation, str(fam.kode_wilayah)
                    ),
                },
                ctx.day(rng),
                only=[attr],
            )
            for _ in range(2):
                self.sub.add("keluarga.csv", dict(row), case="SAME_KK_TWICE", codes=code, key_type="no_kk")
            return True
        if code == "FAMILY_STRUCTURE":
            if first_round:
                got = self.pool_family(min_members=2)
                if got is None:
                    return False
                fam, members = got
                self.sub.add(
                    "keluarga.csv",
                    keluarga_row("TAMBAH", fam, ctx.day(rng)),
                    case="TWO_HEADS",
                    codes=code,
                    key_type="no_kk",
                )
                for i, (_, m) in enumerate(members.iterrows()):
                    hub = 1 if i < 2 else int(m.hubungan_keluarga) if m.hubungan_keluarga != 1 else 3
                    self.add_member(
                        code, "TWO_HEADS", anggota_row("TAMBAH", self.as_member(m, fam.no_kk, hub)), m.nik
                    )
                return True
            P = self.state.persons
            for _ in range(20):
                fam = self.family()
                if fam is None:
                    return False
                members = P.loc[self.members.get(fam.no_kk, [])]
                members = members[members.in_registry]
                if len(members) >= 2 and (members.hubungan_keluarga == 1).sum() == 1:
                    break
            else:
                return False
            h = members[members.hubungan_keluarga == 1].iloc[0]
            self.picker.touched_persons.update(members.nik)
            self.picker.touched_families.add(h.no_kk)
            self.add_member(
                code,
                "HEAD_LEAVES_WITHOUT_SUCCESSOR",
                anggota_row("HAPUS", h, full=False, alasan_hapus="PINDAH"),
                h.nik,
            )
            return True
        if code == "RECORD_NOT_FOUND":
            fam = self.family()
            person = self.pool_person()
            if fam is None or person is None:
                return False
            if rng.random() < 0.5:
                self.add_member(
                    code,
                    "UPDATE_OF_UNREGISTERED_PERSON",
                    anggota_row("UBAH", person, no_kk=fam.no_kk, full=False, only={"hubungan_keluarga": 7}),
                    person.nik,
                )
            else:
                ghost = {**fam.to_dict(), "no_kk": self.unused_kk(str(fam.kode_wilayah)[:6])}
                self.sub.add(
                    "keluarga.csv",
                    keluarga_row("UBAH", ghost, ctx.day(rng), only=["jenis_atap"]),
                    case="UPDATE_OF_UNKNOWN_FAMILY",
                    codes=code,
                    key_type="no_kk",
                )
            return True
        if code == "RECORD_EXISTS":
            if rng.random() < 0.5:
                p = self.nonhead()
                if p is None:
                    return False
                self.add_member(code, "ADD_OF_REGISTERED_PERSON", anggota_row("TAMBAH", p), p.nik)
            else:
                fam = self.family()
                if fam is None:
                    return False
                self.sub.add(
                    "keluarga.csv",
                    keluarga_row("TAMBAH", fam, ctx.day(rng)),
                    case="ADD_OF_REGISTERED_FAMILY",
                    codes=code,
                    key_type="no_kk",
                )
            return True
        if code == "CONFLICT_LOST":
            return self.bps_overrides_pemda()
        return False

    def bps_overrides_pemda(self) -> bool:
        """The region updates attributes that BPS measured differently in the same round: BPS wins and
        the region's row is CONFLICT_LOST (the registry already holds BPS's values)."""
        F = self.state.families
        for _, fam in self.surveyed.iterrows():
            bps = self.bps_values.get(fam.no_kk)
            if bps is None or fam.no_kk in self.used_conflicts:
                continue
            self.used_conflicts.add(fam.no_kk)
            attrs = list(self.rng.choice(FAMILY_ATTRIBUTES, 2, replace=False))
            current = F.loc[F.no_kk == fam.no_kk].iloc[0]
            values = {
                a: redraw_attribute(
                    self.rng, a, int(bps[a]), current.welfare, self.ctx.relation, str(current.kode_wilayah)
                )
                for a in attrs
            }
            # redraw_attribute gives up (returns BPS's value) when a welfare level makes other values
            # very unlikely; an attribute where both sources agree is no conflict, so drop it
            values = {a: v for a, v in values.items() if v != int(bps[a])}
            if not values:
                continue
            attrs = list(values)
            row = keluarga_row("UBAH", {**current.to_dict(), **values}, self.ctx.day(self.rng), only=attrs)
            self.sub.add(
                "keluarga.csv",
                row,
                case="BPS_OVERRIDES_PEMDA",
                codes="CONFLICT_LOST",
                key_type="no_kk",
                wins="0",
                note="BPS measured these attributes differently this round; BPS wins",
            )
            return True
        return False
