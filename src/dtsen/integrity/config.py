"""config/integrity.json: the split-surge thresholds and the implausible-recipient rules.

Implausible rules are written like program rules and turned into SQL predicates over a family
row `k` of the version being built (implausible_keluarga, and its members implausible_anggota: scratch
relations of sql/publish/candidate.sql); only validated numbers, codes and
column names reach the SQL. Nothing here excludes anyone: a rule counts and lists families for the
ground check, whose `hasil` (the programs' exclude_groundcheck) is what excludes a family.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from dtsen.domain.codes import CODED_FIELDS, FAMILY_ATTRIBUTES
from dtsen.errors import DataError

_RULE_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
ASSETS = tuple(a for a in FAMILY_ATTRIBUTES if a.startswith("punya_"))


class IntegrityConfigError(DataError):
    pass


@dataclass(frozen=True)
class SplitThresholds:
    small_family_max_members: int
    min_families: int
    z_threshold: float
    village_scale_floor: float
    account_share_floor: float
    account_share_ceiling: float
    history_rounds: int
    min_history: int

    def as_params(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ImplausibleRule:
    id: str
    description: str
    sql: str  # predicate over k (the family's row in the version being built)
    survey_months: int  # > 0 when the rule reads a BPS measurement's age (its window)


@dataclass(frozen=True)
class IntegrityConfig:
    version: str
    splits: SplitThresholds
    implausible: tuple[ImplausibleRule, ...]

    @property
    def survey_months(self) -> int:
        """The widest BPS window a rule reads (0: none): those families are looked at every version."""
        return max((r.survey_months for r in self.implausible), default=0)

    def statements(self) -> list[tuple[str, str]]:
        """One INSERT into new_implausible per rule (sql/publish/candidate.sql runs them)."""
        return [
            (
                f"implausible_{rule.id}",
                "INSERT INTO new_implausible (rule, no_kk, kode_wilayah, desil) "  # noqa: S608 (validated)
                f"SELECT '{rule.id}', k.no_kk, k.kode_wilayah, k.desil FROM implausible_keluarga k "
                f"WHERE {rule.sql}",
            )
            for rule in self.implausible
        ]


def _number(raw: dict, key: str, where: str, kind: type, low: float, high: float) -> int | float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise IntegrityConfigError(f"{where}: {key} must be a number {low}-{high}, not {value!r}")
    if kind is int and value != int(value):
        raise IntegrityConfigError(f"{where}: {key} must be a whole number, not {value!r}")
    return kind(value)


def parse_splits(raw: object) -> SplitThresholds:
    where = "integrity splits"
    if not isinstance(raw, dict):
        raise IntegrityConfigError(f"{where}: an object is required")
    return SplitThresholds(
        small_family_max_members=_number(raw, "small_family_max_members", where, int, 1, 20),
        min_families=_number(raw, "min_families", where, int, 1, 100_000),
        z_threshold=_number(raw, "z_threshold", where, float, 0.5, 100),
        village_scale_floor=_number(raw, "village_scale_floor", where, float, 0.1, 1000),
        account_share_floor=_number(raw, "account_share_floor", where, float, 0.0001, 1),
        account_share_ceiling=_number(raw, "account_share_ceiling", where, float, 0.01, 1),
        history_rounds=_number(raw, "history_rounds", where, int, 1, 40),
        min_history=_number(raw, "min_history", where, int, 1, 40),
    )


def parse_rule(raw: object) -> ImplausibleRule:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not _RULE_ID.match(raw["id"]):
        raise IntegrityConfigError(f"each implausible rule needs an id matching {_RULE_ID.pattern}")
    where = f"implausible rule {raw['id']}"
    known = {
        "id",
        "description",
        "desil_max",
        "any_asset",
        "luas_lantai_min_m2",
        "member_status_pekerjaan",
        "pengeluaran_above_desil",
        "pengeluaran_months",
    }
    if unknown := set(raw) - known:
        raise IntegrityConfigError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    terms = [f"k.desil <= {_number(raw, 'desil_max', where, int, 1, 10)}"]
    survey_months = 0
    if "any_asset" in raw:
        assets = raw["any_asset"]
        if not isinstance(assets, list) or not assets or not set(assets) <= set(ASSETS):
            raise IntegrityConfigError(f"{where}: any_asset must list some of {list(ASSETS)}")
        terms.append("(" + " OR ".join(f"k.{a} = 1" for a in sorted(set(assets))) + ")")
    if "luas_lantai_min_m2" in raw:
        terms.append(f"k.luas_lantai_m2 >= {_number(raw, 'luas_lantai_min_m2', where, int, 1, 2000)}")
    if "member_status_pekerjaan" in raw:
        codes = raw["member_status_pekerjaan"]
        allowed = set(CODED_FIELDS["status_pekerjaan"].codes)
        if (
            not isinstance(codes, list)
            or not codes
            or not all(isinstance(c, int) and c in allowed for c in codes)
        ):
            raise IntegrityConfigError(
                f"{where}: member_status_pekerjaan must list codes of {sorted(allowed)}"
            )
        terms.append(
            "EXISTS (SELECT 1 FROM implausible_anggota a WHERE a.no_kk = k.no_kk "  # noqa: S608
            f"AND a.status_pekerjaan = ANY(ARRAY{sorted(set(codes))}::smallint[]))"
        )
    if "pengeluaran_above_desil" in raw:
        desil = _number(raw, "pengeluaran_above_desil", where, int, 2, 10)
        survey_months = _number(raw, "pengeluaran_months", where, int, 1, 120)
        # the desil's threshold: the lowest score (log per-capita expenditure) ranked into it
        terms.append(
            "k.pengeluaran_per_kapita IS NOT NULL AND k.tanggal_survei > "  # noqa: S608 (validated numbers)
            f"%(reference_date)s::date - interval '{survey_months} months' "
            f"AND ln(k.pengeluaran_per_kapita::float8) > (SELECT skor FROM desil_floor WHERE desil = {desil})"
        )
    elif "pengeluaran_months" in raw:
        raise IntegrityConfigError(f"{where}: pengeluaran_months goes with pengeluaran_above_desil")
    if len(terms) == 1:
        raise IntegrityConfigError(f"{where}: a rule needs a condition besides desil_max")
    return ImplausibleRule(
        raw["id"], str(raw.get("description", raw["id"])), " AND ".join(terms), survey_months
    )


def parse_integrity(document: dict) -> IntegrityConfig:
    rules = tuple(parse_rule(r) for r in document.get("implausible", []))
    if len({r.id for r in rules}) != len(rules):
        raise IntegrityConfigError("implausible rule ids must be unique")
    return IntegrityConfig(str(document.get("version", "")), parse_splits(document.get("splits")), rules)


def load_integrity(path: Path | None = None) -> IntegrityConfig:
    from dtsen.config import settings

    path = Path(path) if path else settings().integrity_config_path
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntegrityConfigError(f"integrity configuration {path} cannot be read: {exc}") from exc
    return parse_integrity(document)
