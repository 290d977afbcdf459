"""The proxy-means-test (PMT) ranking model: a versioned JSON file, turned into SQL.

A model predicts a family's log monthly per-capita expenditure as an intercept plus one term per
feature. Features are a fixed, documented library (family attributes as stored, a few derived from
them, the family's region from its village code, and aggregates over the family's members); the model
file chooses which to use and with what coefficients:

    {"feature": "jenis_lantai", "type": "category", "coefficients": {"1": 0.31, "2": 0.22}}
    {"feature": "log_luas_lantai_per_kapita", "type": "linear", "coefficient": 0.14, "default": 2.6}

A category code not listed (or NULL) contributes 0: it is the reference level. A linear feature that
is NULL takes `default`. Regional terms are category terms over `kode_provinsi`, `kode_kabupaten` or
`perkotaan` (an unlisted region is the national level). Keys the model does not read (a term's
`group`, the document's `training`, `penalty`, `regions`, `fitted_on`) are kept in the document and
so in its hash. Only feature names from the library and numbers reach the SQL, so a model
file cannot inject SQL. The model's hash (sha256 of its canonical JSON) is recorded in every version.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from dtsen.config import settings
from dtsen.domain.codes import FAMILY_ATTRIBUTES
from dtsen.errors import DataError

# Member aggregates: SQL over one family's members `m` (publish.anggota joined with `umur`, the age in
# whole years on the round's reference date). Each is a number per family.
MEMBER_FEATURES: dict[str, str] = {
    "jumlah_anggota": "count(*)",
    "log_jumlah_anggota": "ln(count(*))",
    "share_umur_0_14": "avg((m.umur < 15)::int)",
    "share_umur_60_plus": "avg((m.umur >= 60)::int)",
    "pendidikan_kepala": "max(m.pendidikan_tertinggi) FILTER (WHERE m.hubungan_keluarga = 1)",
    "pendidikan_tertinggi_dewasa": "max(m.pendidikan_tertinggi) FILTER (WHERE m.umur >= 18)",
    "share_bekerja_formal": "avg((m.status_pekerjaan IN (2, 5, 6))::int)",
    "share_bekerja": "avg((m.status_pekerjaan BETWEEN 1 AND 6)::int)",
    "ada_asn_bumn": "bool_or(m.status_pekerjaan IN (5, 6))::int",
    "share_disabilitas": "avg((m.disabilitas = 1)::int)",
    "share_penyakit_kronis": "avg((m.penyakit_kronis = 1)::int)",
    "kepala_perempuan": "bool_or(m.hubungan_keluarga = 1 AND m.jenis_kelamin = 2)::int",
    "share_anak_7_18_sekolah": (
        "coalesce(avg((m.status_sekolah = 1)::int) FILTER (WHERE m.umur BETWEEN 7 AND 18), 1)"
    ),
}
# Family features: stored attributes `f`, and a few derived from them and the member aggregates `a`.
DERIVED_FAMILY_FEATURES: dict[str, str] = {
    "log_luas_lantai_per_kapita": "ln(greatest(f.luas_lantai_m2, 1)::float8 / a.jumlah_anggota)",
    # 6600 VA and above is one class (the contract allows any value from 6600 upwards)
    "daya_listrik_kelas": "least(f.daya_listrik_va, 6600)",
    # regions, from the 10-digit village code (category terms: a code the model does not list is the
    # national level): province (2 digits), regency/city (4), and urban = the village's type digit,
    # the 7th character, is 1 (kelurahan); 2 (desa) and 3 (desa adat) are rural (as ref.desa.jenis)
    "kode_provinsi": "left(f.kode_wilayah, 2)::int",
    "kode_kabupaten": "left(f.kode_wilayah, 4)::int",
    "perkotaan": "(substr(f.kode_wilayah, 7, 1) = '1')::int",
}
FAMILY_FEATURES: dict[str, str] = {name: f"f.{name}" for name in FAMILY_ATTRIBUTES} | DERIVED_FAMILY_FEATURES
FEATURES: dict[str, str] = FAMILY_FEATURES | {name: f"a.{name}" for name in MEMBER_FEATURES}


class ModelError(DataError):
    pass


@dataclass(frozen=True)
class Term:
    feature: str
    type: str  # "category" | "linear"
    coefficients: dict[int, float]  # category code -> coefficient (category terms)
    coefficient: float  # linear terms
    default: float  # linear terms: value used when the feature is NULL
    mean_contribution: float  # the term's mean over the families it was fitted on (for explain)

    def sql(self) -> str:
        """The term's contribution as a SQL expression (only library names and numbers in it)."""
        expr = FEATURES[self.feature]
        if self.type == "category":
            if not self.coefficients:
                return "0"
            whens = " ".join(f"WHEN {code} THEN {_num(c)}" for code, c in sorted(self.coefficients.items()))
            return f"(CASE {expr} {whens} ELSE 0 END)"
        return f"({_num(self.coefficient)} * coalesce(({expr})::float8, {_num(self.default)}))"


@dataclass(frozen=True)
class RankingModel:
    name: str
    version: str
    intercept: float
    terms: tuple[Term, ...]
    bps_max_age_months: int
    document: dict  # the file as loaded (recorded with every version)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(canonical_json(self.document).encode()).hexdigest()

    @property
    def reference(self) -> dict:
        """What a version records about the model that ranked it (contract: name + parameters hash)."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def member_features_used(self) -> list[str]:
        used = {t.feature for t in self.terms if t.feature in MEMBER_FEATURES}
        used.add("jumlah_anggota")  # always: population weights and per-capita features need it
        return sorted(used)

    def score_sql(self) -> str:
        """Predicted log per-capita expenditure, over family `f` and member aggregates `a`."""
        return " + ".join([_num(self.intercept)] + [t.sql() for t in self.terms])


AGE_SQL = "(extract(year FROM age(%(reference_date)s::date, m.tanggal_lahir)))::int"


def family_features_query(select: str, families: str, members: str, member_features: list[str]) -> str:
    """One row per family of `families` (alias f) with `select` evaluated over f and its member
    aggregates a; `members` is a relation of (no_kk, hubungan_keluarga, jenis_kelamin, tanggal_lahir,
    and the member attributes). Parameter: %(reference_date)s, the date ages are taken on."""
    aggregates = ",\n           ".join(f"{MEMBER_FEATURES[name]} AS {name}" for name in member_features)
    # only library expressions and the caller's own relation names are interpolated
    return f"""
    WITH m AS (SELECT x.*, {AGE_SQL.replace("m.", "x.")} AS umur FROM {members} x),
    a AS (SELECT m.no_kk,
           {aggregates}
          FROM m GROUP BY m.no_kk)
    SELECT {select}
    FROM {families} f JOIN a ON a.no_kk = f.no_kk"""  # noqa: S608


def feature_library_sha() -> str:
    """A hash of the feature library (every feature's SQL, the member aggregates, the age rule and the
    feature query around them): what a score means besides the model's own numbers."""
    template = family_features_query("{select}", "{families}", "{members}", list(MEMBER_FEATURES))
    library = {
        "features": FEATURES,
        "member_features": MEMBER_FEATURES,
        "age_sql": AGE_SQL,
        "query": template,
    }
    return hashlib.sha256(canonical_json(library).encode()).hexdigest()


def canonical_json(document: dict) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _num(value: float) -> str:
    if not math.isfinite(value):
        raise ModelError(f"coefficient {value!r} is not a finite number")
    return repr(float(value))


def _float(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _code(value: object, where: str) -> int:
    try:
        return int(value)  # JSON object keys are strings: "32" -> 32
    except (TypeError, ValueError):
        raise ModelError(f"{where}: category code {value!r} is not an integer") from None


def parse_model(document: dict) -> RankingModel:
    """Check a model document and build the model; errors name the offending entry."""
    try:
        terms = []
        for i, raw in enumerate(document["terms"]):
            where = f"terms[{i}] ({raw.get('feature')!r})"
            if raw.get("feature") not in FEATURES:
                raise ModelError(f"{where}: unknown feature; known: {', '.join(sorted(FEATURES))}")
            kind = raw.get("type")
            if kind == "category":
                coefficients = {
                    _code(code, where): _float(c, where) for code, c in raw["coefficients"].items()
                }
                terms.append(
                    Term(raw["feature"], kind, coefficients, 0.0, 0.0, raw.get("mean_contribution", 0.0))
                )
            elif kind == "linear":
                terms.append(
                    Term(
                        raw["feature"],
                        kind,
                        {},
                        _float(raw["coefficient"], where),
                        _float(raw.get("default", 0.0), where),
                        raw.get("mean_contribution", 0.0),
                    )
                )
            else:
                raise ModelError(f"{where}: type must be 'category' or 'linear', not {kind!r}")
        features = [t.feature for t in terms]
        if len(set(features)) != len(features):
            raise ModelError("a feature appears in more than one term")
        return RankingModel(
            name=str(document["name"]),
            version=str(document["version"]),
            intercept=_float(document["intercept"], "intercept"),
            terms=tuple(terms),
            bps_max_age_months=int(document.get("bps_measurement_max_age_months", 12)),
            document=document,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"ranking model is malformed: missing or wrong entry {exc}") from exc


def load_model(path: Path | None = None) -> RankingModel:
    path = Path(path) if path else settings().ranking_model_path
    return parse_model(json.loads(path.read_text(encoding="utf-8")))
