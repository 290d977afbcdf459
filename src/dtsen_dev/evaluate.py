"""Score the pipeline against a generated world's ground truth.

Rejections: per reason code, precision and recall of (submission, file, line) pairs the pipeline
rejected against the truth's expected codes. Registry: the open persons and families after a round
against expected_anggota / expected_keluarga, field by field. Only counts and masked samples leave
this module.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from dtsen.domain.identity import mask
from dtsen.rank.model import RankingModel, family_features_query


@dataclass
class CodeScore:
    expected: int = 0
    found: int = 0
    true_positive: int = 0

    @property
    def precision(self) -> float:
        return self.true_positive / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive / self.expected if self.expected else 1.0


@dataclass
class RejectionScore:
    codes: dict[str, CodeScore] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)  # masked samples of false positives
    missed: list[str] = field(default_factory=list)

    def perfect(self) -> bool:
        return all(s.precision == 1.0 and s.recall == 1.0 for s in self.codes.values())


def expected_rejections(truth_round: Path) -> dict[tuple[str, str, int], set[str]]:
    out: dict[tuple[str, str, int], set[str]] = {}
    with open(truth_round / "cases.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["line"] and row["expected_codes"]:
                out[(row["submission_id"], row["file"], int(row["line"]))] = set(
                    row["expected_codes"].split(";")
                )
    return out


def actual_rejections(
    conn: psycopg.Connection, round_id: str, codes: set[str]
) -> dict[tuple[str, str, int], set[str]]:
    out: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    for sub_id, file_name, line, code in conn.execute(
        "SELECT s.submission_id, q.file_name, q.line_no, q.reason_code FROM quality.rejection q "
        "JOIN ingest.submission s USING (submission_pk) JOIN ingest.round r ON r.round_seq = q.round_seq "
        "WHERE r.round_id = %s",
        (round_id,),
    ):
        if code in codes:
            out[(sub_id, file_name, line)].add(code)
    return out


def score_rejections(
    conn: psycopg.Connection, truth_round: Path, round_id: str, codes: set[str]
) -> RejectionScore:
    expected = expected_rejections(truth_round)
    expected = {k: v & codes for k, v in expected.items() if v & codes}
    actual = actual_rejections(conn, round_id, codes)
    score = RejectionScore({c: CodeScore() for c in sorted(codes)})
    for key, exp in expected.items():
        for code in exp:
            score.codes[code].expected += 1
            if code in actual.get(key, set()):
                score.codes[code].true_positive += 1
            elif len(score.missed) < 20:
                score.missed.append(f"{key[0]}:{key[1]}:{key[2]} {code}")
    for key, got in actual.items():
        for code in got:
            score.codes[code].found += 1
            if code not in expected.get(key, set()) and len(score.unexpected) < 20:
                score.unexpected.append(f"{key[0]}:{key[1]}:{key[2]} {code}")
    return score


REGISTRY_PERSONS = """
SELECT p.nik::text, m.no_kk::text, m.hubungan_keluarga::text, p.nama, p.jenis_kelamin::text,
       p.tanggal_lahir::text, p.status_perkawinan::text, p.pendidikan_tertinggi::text, p.status_sekolah::text,
       p.status_pekerjaan::text, p.disabilitas::text, p.penyakit_kronis::text
FROM registry.person p JOIN registry.membership m ON m.nik = p.nik AND m.valid_to_round IS NULL
WHERE p.is_open
"""


def _family_query(columns: list[str]) -> str:
    cols = ", ".join(f"coalesce({c}::text, '')" for c in columns)
    return f"SELECT {cols} FROM registry.family WHERE is_open"  # noqa: S608 (column names from the truth header)


@dataclass
class RegistryScore:
    persons_expected: int
    persons_actual: int
    persons_differing: int
    families_expected: int
    families_actual: int
    families_differing: int
    samples: list[str]

    def equal(self) -> bool:
        return self.persons_differing == 0 and self.families_differing == 0


def _read_gz(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, {row[0]: row for row in reader}


def _compare(header, expected, actual, samples, label) -> int:
    differing = 0
    for key in expected.keys() | actual.keys():
        e, a = expected.get(key), actual.get(key)
        if e != a:
            differing += 1
            if len(samples) < 15:
                if e is None or a is None:
                    samples.append(f"{label} {mask(key)} {'unexpected' if e is None else 'missing'}")
                else:
                    fields = [
                        f"{h}: expected {x!r} got {y!r}"
                        for h, x, y in zip(header, e, a, strict=True)
                        if x != y and h not in ("nama",)
                    ] or ["nama differs"]
                    samples.append(f"{label} {mask(key)} " + "; ".join(fields))
    return differing


def score_registry(conn: psycopg.Connection, truth_round: Path) -> RegistryScore:
    p_header, p_expected = _read_gz(truth_round / "expected_anggota.csv.gz")
    f_header, f_expected = _read_gz(truth_round / "expected_keluarga.csv.gz")
    p_actual = {r[0]: ["" if v is None else v for v in r] for r in conn.execute(REGISTRY_PERSONS)}
    f_actual = {r[0]: list(r) for r in conn.execute(_family_query(f_header))}
    samples: list[str] = []
    pd_ = _compare(p_header, p_expected, p_actual, samples, "person")
    fd = _compare(f_header, f_expected, f_actual, samples, "family")
    return RegistryScore(len(p_expected), len(p_actual), pd_, len(f_expected), len(f_actual), fd, samples)


@dataclass
class RepairScore:
    """NIK-repair suggestions against the truth: a case with a true_nik is a person Dukcapil knows
    (the suggestion should name them); a case without one (e.g. an unregistered newborn) should get
    no suggestion."""

    repairable: int = 0  # cases with a true NIK
    unrepairable: int = 0
    suggested: int = 0
    correct: int = 0
    wrong: int = 0  # suggested a different person than the truth's
    suggested_for_unrepairable: int = 0

    @property
    def precision(self) -> float:
        return self.correct / self.suggested if self.suggested else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.repairable if self.repairable else 1.0


REPAIR_CODES = {"NIK_NOT_IN_DUKCAPIL", "NIK_MISMATCH"}


def score_nik_repairs(conn: psycopg.Connection, truth_round: Path, round_id: str) -> RepairScore:
    suggestions = {
        (sub, file_name, line): str(nik)
        for sub, file_name, line, nik in conn.execute(
            "SELECT s.submission_id, n.file_name, n.line_no, n.suggested_nik FROM quality.nik_suggestion n "
            "JOIN ingest.submission s USING (submission_pk) JOIN ingest.round r ON r.round_seq = n.round_seq "
            "WHERE r.round_id = %s",
            (round_id,),
        )
    }
    score = RepairScore()
    with open(truth_round / "cases.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if not row["line"] or not REPAIR_CODES & set(row["expected_codes"].split(";")):
                continue
            got = suggestions.get((row["submission_id"], row["file"], int(row["line"])))
            if row["true_nik"]:
                score.repairable += 1
            else:
                score.unrepairable += 1
            if got is None:
                continue
            score.suggested += 1
            if got == row["true_nik"]:
                score.correct += 1
            elif row["true_nik"]:
                score.wrong += 1
            else:
                score.suggested_for_unrepairable += 1
    return score


@dataclass
class RankingScore:
    """How well a version's ranking recovers the generator's hidden welfare (person-weighted desil)."""

    families: int
    spearman: float  # rank correlation of score and hidden welfare, over families
    inclusion_error: float  # of individuals ranked desil 1-5, the share truly in desil 6-10
    exclusion_error: float  # of individuals truly in desil 1-5, the share ranked desil 6-10
    desil_exact: float  # individuals whose ranked desil equals the true desil

    def line(self) -> str:
        return (
            f"ranking vs hidden welfare: {self.families} families, Spearman {self.spearman:.3f}, "
            f"desil 1-5 inclusion error {self.inclusion_error:.3f}, exclusion error {self.exclusion_error:.3f}, "
            f"same desil {self.desil_exact:.3f}"
        )


def population_desil(score, weight):  # pandas Series in, Series out
    """The ranking's rule applied to any score: sort (ties by index), cut by cumulative individuals."""
    import numpy as np

    order = score.sort_values(kind="mergesort").index
    w = weight.loc[order]
    before = w.cumsum() - w
    desil = np.minimum(10, 1 + np.floor(10 * before / w.sum())).astype(int)
    return desil.reindex(score.index)


def score_ranking(conn: psycopg.Connection, version: int, truth_round: Path) -> RankingScore:
    import pandas as pd

    cur = conn.execute(
        "SELECT no_kk, skor_kesejahteraan, desil, jumlah_anggota FROM publish.keluarga WHERE version = %s",
        (version,),
    )
    ranked = (
        pd.DataFrame(cur.fetchall(), columns=["no_kk", "skor", "desil", "n"]).set_index("no_kk").sort_index()
    )
    return _against_welfare(ranked, truth_round)


def score_model_on_truth(
    conn: psycopg.Connection, model: RankingModel, truth_round: Path, reference_date: dt.date
) -> RankingScore:
    """How well `model` ranks a round's true registry: every family and member of the truth
    (expected_keluarga/anggota), its features computed by the ranking's own SQL, scored by the model's
    score SQL (no BPS measurement overrides a prediction), cut into desil by the ranking's rule and
    compared with the hidden welfare. Leaves no table behind."""
    import pandas as pd

    copy_truth_csv(conn, truth_round / "expected_keluarga.csv.gz", "model_truth_family")
    copy_truth_csv(conn, truth_round / "expected_anggota.csv.gz", "model_truth_member")
    query = family_features_query(
        f"f.no_kk, {model.score_sql()} AS skor, a.jumlah_anggota",
        "model_truth_family",
        "model_truth_member",
        model.member_features_used(),
    )
    rows = conn.execute(query, {"reference_date": reference_date}).fetchall()
    conn.execute("DROP TABLE model_truth_family, model_truth_member")
    ranked = pd.DataFrame(rows, columns=["no_kk", "skor", "n"]).set_index("no_kk").sort_index()
    ranked["skor"] = ranked["skor"].astype(float)
    ranked["desil"] = population_desil(ranked["skor"], ranked["n"])
    return _against_welfare(ranked, truth_round)


def _against_welfare(ranked, truth_round: Path) -> RankingScore:
    """`ranked` (index no_kk; skor, desil, n) against the round's hidden welfare."""
    import pandas as pd

    truth = pd.read_csv(truth_round / "welfare.csv.gz", dtype={"no_kk": "int64"}).set_index("no_kk")
    joined = ranked.join(truth, how="inner")
    true_desil = population_desil(joined["log_pengeluaran_per_kapita"], joined["n"])
    ranked_poor, truly_poor = joined["desil"] <= 5, true_desil <= 5
    n = joined["n"]
    return RankingScore(
        families=len(joined),
        spearman=float(joined["skor"].corr(joined["log_pengeluaran_per_kapita"], method="spearman")),
        inclusion_error=float(n[ranked_poor & ~truly_poor].sum() / n[ranked_poor].sum()),
        exclusion_error=float(n[truly_poor & ~ranked_poor].sum() / n[truly_poor].sum()),
        desil_exact=float(n[joined["desil"] == true_desil].sum() / n.sum()),
    )


REGISTRY_COLUMN_TYPES_SQL = """
SELECT DISTINCT ON (column_name) column_name, format_type(a.atttypid, a.atttypmod)
FROM information_schema.columns c
JOIN pg_attribute a ON a.attrelid = format('%I.%I', c.table_schema, c.table_name)::regclass
                   AND a.attname = c.column_name
WHERE c.table_schema = 'registry' AND c.table_name IN ('family', 'person', 'membership')
ORDER BY column_name
"""


def copy_truth_csv(conn: psycopg.Connection, path: Path, table: str) -> list[str]:
    """Stream a gzipped truth CSV (expected_keluarga/anggota) into temp table `table`, each column
    typed as the registry types it (the truth files use the registry's column names); returns the
    columns. Unquoted empty fields load as NULL."""
    types = dict(conn.execute(REGISTRY_COLUMN_TYPES_SQL).fetchall())
    with gzip.open(path, "rb") as fh:
        columns = fh.readline().decode().strip().split(",")
        unknown = [c for c in columns if c not in types]
        if unknown:
            raise ValueError(f"{path.name}: columns the registry does not have: {unknown}")
        definition = ", ".join(f"{c} {types[c]}" for c in columns)
        conn.execute(f"CREATE TEMP TABLE {table} ({definition}) ON COMMIT DROP")
        with conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
            while chunk := fh.read(1 << 20):
                copy.write(chunk)
    return columns
