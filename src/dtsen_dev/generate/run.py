"""Generate a synthetic population and its rounds in the contract's layout, with ground truth.

Regency by regency: each regency's state is read from disk, changed, written as that regency's
submission, appended to the national BPS / Kemensos / Dukcapil files and to the truth, and saved
again. Peak memory is therefore one regency's, whatever the national size.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import math
import resource
import shutil
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dtsen.contract import (
    ADUAN,
    BPS_KELUARGA,
    CONTRACT_ROW_LEVEL_CODES,
    DUKCAPIL_PENDUDUK,
    KEMENSOS_GROUNDCHECK,
)
from dtsen.domain.codes import FAMILY_ATTRIBUTES, MEMBER_ATTRIBUTES
from dtsen.reference import read_wilayah
from dtsen.storage import file_sha256
from dtsen_dev.generate import objections, schemes
from dtsen_dev.generate.inject import LATER_CODES, ROUND1_CODES, Injector
from dtsen_dev.generate.numbers import SerialCounters
from dtsen_dev.generate.population import NamePools, build_population
from dtsen_dev.generate.relation import Relation
from dtsen_dev.generate.rows import ANGGOTA_COLUMNS, KELUARGA_COLUMNS, TRUTH_COLUMNS, SubmissionRows
from dtsen_dev.generate.world import (
    RATES,
    Picker,
    RoundContext,
    State,
    initial_rows,
    survey_and_groundcheck,
    update_rows,
)

POOL_SHARE = 0.05  # households known to Dukcapil but not (yet) in the registry
MAX_INJECTED_SHARE = 0.12
EXPECTED_KELUARGA = [
    "no_kk",
    "kode_wilayah",
    "alamat",
    "tanggal_pendataan",
    *FAMILY_ATTRIBUTES,
    "pengeluaran_per_kapita",
    "tanggal_survei",
    "groundcheck_tanggal",
    "groundcheck_hasil",
    "groundcheck_layak",
]
EXPECTED_ANGGOTA = [
    "nik",
    "no_kk",
    "hubungan_keluarga",
    "nama",
    "jenis_kelamin",
    "tanggal_lahir",
    *MEMBER_ATTRIBUTES,
]


@dataclass
class GenConfig:
    persons: int
    rounds: int = 3
    seed: int = 20260101
    out: Path = Path("out/synthetic")
    first_round: str = "2026-Q1"
    regencies: int | None = None
    error_share: float = 0.003
    schemes: bool = False  # inject integrity schemes (dtsen_dev.generate.schemes), with truth
    relation: str = "default"  # how proxies relate to welfare: default, other, regional (relation.py)
    bps_share: float = RATES["bps"]  # share of the registry's families BPS measures per round
    bps_panel: float = 0.0  # of those, the share BPS measured before (measured twice: the survey's noise)
    aduan: float = 0.0  # share of registered families objected to or proposed per round (objections.py)


# Options recorded in summary.json only when they differ from these: worlds generated without them
# (the sample) stay byte-identical.
QUIET_DEFAULTS = {
    "schemes": False,
    "relation": "default",
    "bps_share": RATES["bps"],
    "bps_panel": 0.0,
    "aduan": 0.0,
}


def round_ids(first: str, n: int) -> list[str]:
    year, q = int(first[:4]), int(first[-1])
    out = []
    for _ in range(n):
        out.append(f"{year}-Q{q}")
        year, q = (year + 1, 1) if q == 4 else (year, q + 1)
    return out


def quarter(round_id: str) -> tuple[dt.date, dt.date]:
    year, q = int(round_id[:4]), int(round_id[-1])
    start = dt.date(year, 3 * q - 2, 1)
    end = dt.date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1) - dt.timedelta(days=1)
    return start, end


def choose_regencies(seed: int, k: int) -> list[str]:
    """K regencies spread over provinces, deterministic by seed."""
    w = read_wilayah()
    rng = np.random.default_rng([seed, 999])
    by_province: dict[str, list[str]] = {}
    for kab in sorted(w.kabupaten):
        by_province.setdefault(kab[:2], []).append(kab)
    provinces = list(rng.permutation(sorted(by_province)))
    chosen: list[str] = []
    while len(chosen) < k:
        for prov in provinces:
            options = [c for c in by_province[prov] if c not in chosen]
            if options and len(chosen) < k:
                chosen.append(str(rng.choice(options)))
    return sorted(chosen)


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([r.get(c, "") for c in columns] for r in rows)


def write_manifest(
    folder: Path,
    source: str,
    submission_id: str,
    round_id: str,
    kode: str,
    submitted_at: dt.datetime,
    by: str,
) -> None:
    files = {p.name: file_sha256(p)[0] for p in sorted(folder.glob("*.csv"))}
    manifest = {
        "source": source,
        "submission_id": submission_id,
        "round_id": round_id,
        "kode_wilayah": kode,
        "submitted_at": submitted_at.isoformat(),
        "submitted_by": by,
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _fmt_frame(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = df[columns].copy()
    for c in columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(lambda v: "" if pd.isna(v) else str(int(v)))
    return out.fillna("")


def _gzip_text(path: Path) -> io.TextIOWrapper:
    """gzip without a timestamp or file name in its header: same content, same bytes."""
    raw = gzip.GzipFile(filename="", mode="wb", fileobj=open(path, "wb"), mtime=0)  # noqa: SIM115
    return io.TextIOWrapper(_ClosingGzip(raw), encoding="utf-8", newline="")


class _ClosingGzip(io.RawIOBase):
    """Closes the gzip stream and then its file (GzipFile leaves a passed fileobj open)."""

    def __init__(self, gz: gzip.GzipFile):
        self.gz = gz

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        return self.gz.write(b)

    def close(self) -> None:
        if not self.closed:
            fileobj = self.gz.fileobj
            self.gz.close()
            fileobj.close()
        super().close()


class TruthWriter:
    def __init__(self, folder: Path, stack: ExitStack):
        folder.mkdir(parents=True, exist_ok=True)
        self.cases = csv.writer(
            stack.enter_context(open(folder / "cases.csv", "w", newline="", encoding="utf-8")),
            lineterminator="\n",
        )
        self.cases.writerow(TRUTH_COLUMNS)
        self.folder = folder
        self.kel = stack.enter_context(_gzip_text(folder / "expected_keluarga.csv.gz"))
        self.ang = stack.enter_context(_gzip_text(folder / "expected_anggota.csv.gz"))
        self.wel = stack.enter_context(_gzip_text(folder / "welfare.csv.gz"))
        self.first = True
        self.case_counts: dict[str, int] = {}

    def case(self, values: dict) -> None:
        self.cases.writerow([values.get(c, "") for c in TRUTH_COLUMNS])
        for code in str(values.get("expected_codes", "")).split(";"):
            if code:
                self.case_counts[code] = self.case_counts.get(code, 0) + 1

    def expected(self, state: State) -> None:
        fams = state.registry_families().sort_values("no_kk")
        pers = state.registry_persons().sort_values("nik")
        _fmt_frame(fams, EXPECTED_KELUARGA).to_csv(
            self.kel, index=False, header=self.first, lineterminator="\n"
        )
        _fmt_frame(pers, EXPECTED_ANGGOTA).to_csv(
            self.ang, index=False, header=self.first, lineterminator="\n"
        )
        fams[["no_kk", "welfare"]].rename(columns={"welfare": "log_pengeluaran_per_kapita"}).round(5).to_csv(
            self.wel, index=False, header=self.first, lineterminator="\n"
        )
        self.first = False


def write_submission(
    folder: Path,
    sub: SubmissionRows,
    rng: np.random.Generator,
    round_id: str,
    truth: TruthWriter,
    columns: dict[str, list[str]],
) -> dict[str, int]:
    """Shuffle each file's rows (injected ones land anywhere), write them, report truth with lines."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, cols in columns.items():
        pending = sub.files.get(name, [])
        frames = [f[cols].assign(_pending=-1) for f in sub.bulk.get(name, [])]
        listed = pd.DataFrame([p.row for p in pending], columns=cols).fillna("")
        listed["_pending"] = np.arange(len(pending))
        table = pd.concat([*frames, listed], ignore_index=True) if frames else listed
        table = table.iloc[rng.permutation(len(table))].reset_index(drop=True)
        table[cols].to_csv(folder / name, index=False, lineterminator="\n")
        counts[name] = len(table)
        key_col = "nik" if "nik" in cols else "no_kk"
        marked = table.index[table["_pending"].to_numpy() >= 0]
        for position in marked:
            p = pending[int(table.at[position, "_pending"])]
            if p.case:
                truth.case(
                    {
                        "round_id": round_id,
                        "source": sub.source,
                        "submission_id": sub.submission_id,
                        "file": name,
                        "line": int(position) + 2,
                        "key_type": p.key_type or key_col,
                        # aduan.csv names a family by no_kk or a member's nik: the truth's key is the one given
                        "key": p.row.get(key_col) or p.row.get(p.key_type, ""),
                        "case": p.case,
                        "expected_codes": p.codes,
                        "wins": p.wins,
                        "true_nik": p.true_nik,
                        "note": p.note,
                    }
                )
    return counts


class AppendingFile:
    """A national file (BPS, Kemensos, Dukcapil) written regency by regency."""

    def __init__(self, path: Path, columns: list[str], stack: ExitStack):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = columns
        self.writer = csv.writer(
            stack.enter_context(open(path, "w", newline="", encoding="utf-8")), lineterminator="\n"
        )
        self.writer.writerow(columns)
        self.rows = 0

    def add(self, rows: list[dict]) -> None:
        self.writer.writerows([r.get(c, "") for c in self.columns] for r in rows)
        self.rows += len(rows)

    def add_frame(self, frame: pd.DataFrame) -> None:
        self.writer.writerows(frame[self.columns].itertuples(index=False, name=None))
        self.rows += len(frame)


def dukcapil_rows(state: State) -> pd.DataFrame:
    villages = state.families.set_index("no_kk")["kode_wilayah"]
    P = state.persons
    out = pd.DataFrame(
        {
            "nik": P.nik,
            "no_kk": P.no_kk,
            "nama": P.nama,
            "jenis_kelamin": P.jenis_kelamin.astype(int).astype(str),
            "tanggal_lahir": P.tanggal_lahir.dt.strftime("%Y-%m-%d"),
            "kode_wilayah": P.no_kk.map(villages).fillna(""),
            "status_hidup": np.where(P.alive, "HIDUP", "MENINGGAL"),
            "tanggal_meninggal": P.tanggal_meninggal.dt.strftime("%Y-%m-%d").fillna(""),
        }
    )
    return out.sort_values("nik")


def _initial_state(rng, n, villages, home, foreign, nik_c, kk_c, names, on, shift, relation) -> State:
    frame = build_population(rng, n, villages, home, foreign, nik_c, kk_c, names, on, shift, relation)
    fams, pers = frame.families, frame.persons
    pool = rng.random(len(fams)) < POOL_SHARE
    fams["in_registry"], fams["pool"] = ~pool, pool
    for col in ("tanggal_pendataan", "tanggal_survei", "groundcheck_tanggal"):
        fams[col] = pd.NaT
    fams["pengeluaran_per_kapita"] = np.nan
    fams["groundcheck_hasil"] = None
    fams["groundcheck_layak"] = np.nan
    in_pool = pers.no_kk.isin(set(fams.no_kk[pool]))
    pers["in_registry"] = ~in_pool
    dead = in_pool & (rng.random(len(pers)) < 0.06)
    pers["alive"] = ~dead
    pers["tanggal_meninggal"] = pd.NaT
    pers.loc[dead, "tanggal_meninggal"] = pd.Timestamp(on) - pd.to_timedelta(
        rng.integers(30, 3000, int(dead.sum())), unit="D"
    )
    return State(fams, pers)


def _save(state: State, folder: Path, regency: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state.families.to_parquet(folder / f"{regency}_families.parquet", index=False)
    state.persons.to_parquet(folder / f"{regency}_persons.parquet", index=False)


def _load(folder: Path, regency: str) -> State:
    return State(
        pd.read_parquet(folder / f"{regency}_families.parquet"),
        pd.read_parquet(folder / f"{regency}_persons.parquet"),
    )


def generate(cfg: GenConfig) -> dict:
    started = time.monotonic()
    out = Path(cfg.out)
    if out.exists():
        shutil.rmtree(out)
    k = cfg.regencies or min(514, max(4, math.ceil(cfg.persons / 200_000)))
    regencies = choose_regencies(cfg.seed, k)
    w = read_wilayah()
    districts = sorted(d for kab in regencies for d in w.districts_of(kab))
    nik_c, kk_c = SerialCounters(districts), SerialCounters(districts)
    names = NamePools.build(cfg.seed)
    state_dir = out / ".state"
    rids = round_ids(cfg.first_round, cfg.rounds)
    if not 0.0 <= cfg.bps_share <= 1.0:
        raise ValueError(f"bps_share must be between 0 and 1, not {cfg.bps_share}")
    if not 0.0 <= cfg.bps_panel <= 1.0:
        raise ValueError(f"bps_panel must be between 0 and 1, not {cfg.bps_panel}")
    # `schemes`, `relation` and `bps_share` are recorded only when not their defaults: worlds generated
    # without them stay byte-identical
    config = {
        k: v
        for k, v in asdict(cfg).items()
        if k != "out" and (k not in QUIET_DEFAULTS or v != QUIET_DEFAULTS[k])
    }
    summary: dict = {"config": config, "regencies": regencies, "rounds": {}}
    relation = Relation.draw(cfg.relation, cfg.seed, regencies)
    if not relation.is_default:  # the default world has no such file (the sample stays as it is)
        relation.write(out / "truth" / "relation.json", cfg.seed, regencies)
    per_regency = cfg.persons / k
    for ri, rid in enumerate(rids):
        start, cutoff = quarter(rid)
        landing = out / "landing" / rid
        folder_code = rid.replace("-", "")
        counts: dict = {"pemda": {}, "bps": 0, "kemensos": 0, "dukcapil": 0}
        with ExitStack() as stack:
            truth = TruthWriter(out / "truth" / rid, stack)
            bps_id, kem_id = f"bps-{folder_code}-01", f"kemensos-{folder_code}-01"
            bps_file = AppendingFile(
                landing / "bps" / bps_id / "keluarga.csv", list(BPS_KELUARGA.columns), stack
            )
            kem_file = AppendingFile(
                landing / "kemensos" / kem_id / "groundcheck.csv",
                # the contract's columns: a world's Kemensos knows no case numbers (id_kasus, an extension)
                [c for c in KEMENSOS_GROUNDCHECK.columns if c not in KEMENSOS_GROUNDCHECK.extensions],
                stack,
            )
            snapshot = (cutoff - dt.timedelta(days=3)).isoformat()
            duk_file = AppendingFile(
                out / "landing" / "reference" / "dukcapil" / snapshot / "penduduk.csv",
                list(DUKCAPIL_PENDUDUK.columns),
                stack,
            )
            scheme_truth = (
                AppendingFile(out / "truth" / rid / "skema_integritas.csv", schemes.TRUTH_COLUMNS, stack)
                if cfg.schemes
                else None
            )
            heard = objections.Objections(rid, cfg.aduan) if cfg.aduan else None
            codes = ROUND1_CODES if ri == 0 else LATER_CODES
            pending = set(codes)  # every code at least once per round
            for j, kab in enumerate(regencies):
                rng = np.random.default_rng([cfg.seed, ri, j])
                villages = np.array(w.villages_of(kab))
                others = np.array([v for kk in regencies if kk != kab for v in w.villages_of(kk)[:50]])
                if ri == 0:
                    foreign = [d for d in districts if not d.startswith(kab)]
                    state = _initial_state(
                        rng,
                        int(per_regency * (1 + POOL_SHARE)),
                        villages,
                        w.districts_of(kab),
                        foreign,
                        nik_c,
                        kk_c,
                        names,
                        cutoff,
                        float(rng.normal(0, 0.25)),
                        relation,
                    )
                else:
                    state = _load(state_dir, kab)
                ctx = RoundContext(
                    rid,
                    ri,
                    start,
                    cutoff,
                    kab,
                    j,
                    villages,
                    others,
                    nik_c,
                    kk_c,
                    names,
                    cfg.error_share,
                    relation,
                    cfg.bps_share,
                    cfg.bps_panel,
                )
                picker = Picker(rng, state)
                sub = SubmissionRows("pemda", ctx.submission_id)
                bps, kem = SubmissionRows("bps", bps_id), SubmissionRows("kemensos", kem_id)
                truth_only: list[dict] = []
                if ri == 0:
                    initial_rows(ctx, rng, state, sub)
                surveyed, measured = survey_and_groundcheck(ctx, rng, state, picker, bps, kem)
                if ri > 0:
                    update_rows(ctx, rng, state, picker, sub, truth_only)
                scheme_sub = None
                if scheme_truth is not None and ri > 0:
                    found = schemes.village_surge(ctx, rng, state, picker, sub)
                    scheme_sub, by_account = schemes.account_scheme(ctx, rng, state, picker)
                    found += by_account + schemes.contradictions(ctx, rng, state, picker, sub)
                    scheme_truth.add([t | {"kode_kabupaten": kab} for t in found])
                injector = Injector(ctx, rng, state, picker, sub, surveyed, measured)
                clean_rows = sub.count()
                # Stay well under the quality gate (20%): injected rows at most MAX_INJECTED_SHARE of
                # the clean rows; codes that must appear this round roll over to the next regency.
                budget = max(1, int(clean_rows * MAX_INJECTED_SHARE))
                first_pass = [c for c in codes if c in pending]  # one case of each code still missing
                extras = [(c, int(rng.binomial(clean_rows, cfg.error_share))) for c in codes]
                for code, wanted in [(c, 1) for c in first_pass] + extras:
                    done = attempts = 0
                    while done < wanted and attempts < wanted * 8 and sub.injected < budget:
                        attempts += 1
                        done += bool(injector.inject(code, ri == 0))
                    if done:
                        pending.discard(code)
                # A family whose members all left is closed.
                F, P = state.families, state.persons
                with_members = set(P.no_kk[P.in_registry])
                F.loc[F.in_registry & ~F.no_kk.isin(with_members), "in_registry"] = False
                if heard is not None:
                    # last, on a stream of its own, among the families the round left alone: the
                    # world's other rows stay as they are, and what a visit finds is what is true
                    heard_rng = np.random.default_rng([cfg.seed, ri, j, 26])
                    objections.remember(state)
                    heard.visit(heard_rng, state, kem, ctx.day, picker)
                    if ri > 0:
                        heard.raise_(heard_rng, state, picker)
                folder = landing / "pemda" / ctx.submission_id
                counts["pemda"][ctx.submission_id] = write_submission(
                    folder,
                    sub,
                    rng,
                    rid,
                    truth,
                    {"keluarga.csv": KELUARGA_COLUMNS, "anggota.csv": ANGGOTA_COLUMNS},
                )
                submitted = dt.datetime.combine(
                    cutoff - dt.timedelta(days=k - j + 1),
                    dt.time(9, 30),
                    tzinfo=dt.timezone(dt.timedelta(hours=7)),
                )
                write_manifest(folder, "pemda", ctx.submission_id, rid, kab, submitted, f"dinsos.{kab}")
                if scheme_sub is not None:  # the account scheme's own submission, an hour later
                    scheme_id = schemes.scheme_submission_id(ctx)
                    counts["pemda"][scheme_id] = write_submission(
                        landing / "pemda" / scheme_id,
                        scheme_sub,
                        rng,
                        rid,
                        truth,
                        {"keluarga.csv": KELUARGA_COLUMNS, "anggota.csv": ANGGOTA_COLUMNS},
                    )
                    write_manifest(
                        landing / "pemda" / scheme_id,
                        "pemda",
                        scheme_id,
                        rid,
                        kab,
                        submitted + dt.timedelta(hours=1),
                        schemes.scheme_account(ctx),
                    )
                for t in truth_only:
                    truth.case(
                        {
                            "round_id": rid,
                            "source": "dukcapil",
                            "submission_id": "",
                            "file": "",
                            "line": "",
                            "expected_codes": "",
                            **t,
                        }
                    )
                bps_file.add([p.row for p in bps.files.get("keluarga.csv", [])])
                kem_file.add([p.row for p in kem.files.get("groundcheck.csv", [])])
                duk_file.add_frame(dukcapil_rows(state))
                truth.expected(state)
                _save(state, state_dir, kab)
            counts["bps"], counts["kemensos"], counts["dukcapil"] = (
                bps_file.rows,
                kem_file.rows,
                duk_file.rows,
            )
            if heard is not None and ri > 0:  # nobody objects before a version is published
                counts["aduan"] = _write_objections(heard, landing, truth, cutoff, cfg.seed, ri)
        at = dt.datetime.combine(
            cutoff - dt.timedelta(days=1), dt.time(8, 0), tzinfo=dt.timezone(dt.timedelta(hours=7))
        )
        write_manifest(landing / "bps" / bps_id, "bps", bps_id, rid, "", at, "bps.survei")
        write_manifest(landing / "kemensos" / kem_id, "kemensos", kem_id, rid, "", at, "kemensos.groundcheck")
        if ri > 0:
            _duplicate_submission(landing, regencies[0], rid, truth_folder=out / "truth" / rid)
        summary["rounds"][rid] = {
            "files": counts,
            "dukcapil_snapshot": snapshot,
            "cases": dict(sorted(truth.case_counts.items())),
        }
        # every file of this round is closed: a benchmark may start the round while later ones generate
        (out / "rounds-done").mkdir(exist_ok=True)
        (out / "rounds-done" / rid).touch()
    shutil.rmtree(state_dir, ignore_errors=True)
    shutil.rmtree(out / "rounds-done", ignore_errors=True)  # summary.json now says the world is whole
    elapsed = time.monotonic() - started
    total_rows = sum(
        sum(sum(c.values()) for c in r["files"]["pemda"].values())
        + r["files"]["bps"]
        + r["files"]["kemensos"]
        + r["files"]["dukcapil"]
        for r in summary["rounds"].values()
    )
    summary["rows_written"] = total_rows
    missing = sorted(
        set(CONTRACT_ROW_LEVEL_CODES) - {c for r in summary["rounds"].values() for c in r["cases"]}
    )
    summary["row_level_codes_not_injected"] = missing
    # summary.json stays deterministic (it is committed with the sample); timings are returned only.
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["elapsed_seconds"] = round(elapsed, 1)
    summary["rows_per_second"] = round(total_rows / max(elapsed, 1e-9))
    summary["peak_rss_mib"] = _peak_rss_mib()
    return summary


def _peak_rss_mib() -> int:
    """This process's own peak resident memory. Not `ru_maxrss`: Linux carries it over `exec` from
    the process that forked this one, so a generator started by an 800 MiB test runner reported 804."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):  # the high-water mark of this address space only
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _write_objections(
    heard: objections.Objections, landing: Path, truth: TruthWriter, cutoff: dt.date, seed: int, ri: int
) -> int:
    """The channel's submission of the round (when it heard anything) and its truth: each accepted
    row's claim (truth/<round>/aduan.csv) and the visits of last round's (kunjungan_aduan.csv); the bad
    rows are in cases.csv like every injected row."""
    rows = 0
    if heard.sub.count():
        folder = landing / "aduan" / heard.sub.submission_id
        rows = write_submission(
            folder,
            heard.sub,
            np.random.default_rng([seed, ri, 26]),
            heard.round_id,
            truth,
            {"aduan.csv": list(ADUAN.columns)},
        )["aduan.csv"]
        at = dt.datetime.combine(
            cutoff - dt.timedelta(days=2), dt.time(8, 0), tzinfo=dt.timezone(dt.timedelta(hours=7))
        )
        write_manifest(folder, "aduan", heard.sub.submission_id, heard.round_id, "", at, "kemensos.cekbansos")
    pd.DataFrame(heard.truth, columns=objections.TRUTH_COLUMNS).to_csv(
        truth.folder / "aduan.csv", index=False, lineterminator="\n"
    )
    pd.DataFrame(heard.visits, columns=objections.VISIT_COLUMNS).to_csv(
        truth.folder / "kunjungan_aduan.csv", index=False, lineterminator="\n"
    )
    return rows


def _duplicate_submission(landing: Path, regency: str, rid: str, truth_folder: Path) -> None:
    """A region re-sends byte-identical files under a new submission id."""
    code = rid.replace("-", "")
    original = landing / "pemda" / f"{regency}-{code}-01"
    copy = landing / "pemda" / f"{regency}-{code}-02"
    copy.mkdir(parents=True, exist_ok=True)
    for name in ("keluarga.csv", "anggota.csv"):
        shutil.copyfile(original / name, copy / name)
    manifest = json.loads((original / "manifest.json").read_text())
    manifest["submission_id"] = copy.name
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    with open(truth_folder / "cases.csv", "a", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerow(
            [
                rid,
                "pemda",
                copy.name,
                "",
                "",
                "submission",
                copy.name,
                "RESUBMITTED_IDENTICAL_FILES",
                "DUPLICATE_SUBMISSION",
                "",
                "",
                f"byte-identical to {original.name}",
            ]
        )
