"""Program eligibility from configuration (config/programs.json), as named SQL predicates.

Each program is a list of rules; a person is a recipient when every rule holds. The same predicates
select the recipients of a version and explain one person's decision (`dtsen explain`), so the
explanation cannot drift from the decision. Predicates read the eligibility context `c` (one row per
member of a version: desil, age on the reference date, school status, the occupation codes of the
whole family, the components the family has, the last ground check, Dukcapil death), built by
sql/publish/eligibility.sql.
Only validated integers and code strings reach the SQL.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from dtsen.config import settings
from dtsen.domain.codes import CODED_FIELDS
from dtsen.errors import DataError

GROUNDCHECK_RESULTS = ("DITEMUKAN", "TIDAK_DITEMUKAN", "PINDAH", "MENINGGAL")
_PROGRAM_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")  # also the parquet file name: keep it plain


class ProgramConfigError(DataError):
    pass


@dataclass(frozen=True)
class Rule:
    name: str
    description: str  # for operators and the explain command (English)
    sql: str  # predicate over the eligibility context c


@dataclass(frozen=True)
class Component:
    """A condition on one member that makes the whole family eligible (PKH's components). Its
    predicate reads a member row `x` and the member's age `u.umur` on the reference date."""

    id: str
    description: str
    sql: str


@dataclass(frozen=True)
class Program:
    id: str
    name: str
    unit: str  # "person" | "family"
    rules: tuple[Rule, ...]
    priority_sql: str  # marks prioritas; "false" when the program has no priority rule
    components: tuple[Component, ...] = ()

    def eligible_sql(self) -> str:
        return " AND ".join(f"({r.sql})" for r in self.rules)

    def components_sql(self) -> str:
        """The components a recipient's family has, of this program's (NULL without components)."""
        if not self.components:
            return "NULL::text[]"
        return f"ARRAY(SELECT k FROM unnest(c.komponen) k WHERE k IN ({_listed(self.components)}))"  # noqa: S608 (validated ids)


def _listed(components: tuple[Component, ...]) -> str:
    return ", ".join(f"'{k.id}'" for k in components)  # ids match _PROGRAM_ID: plain words


def _codes(raw: object, field: str, where: str) -> list[int]:
    allowed = set(CODED_FIELDS[field].codes)
    if not isinstance(raw, list) or not all(isinstance(v, int) and v in allowed for v in raw):
        raise ProgramConfigError(f"{where}: {field} codes must be a list of {sorted(allowed)}")
    return sorted(set(raw))


def _int(raw: dict, key: str, where: str, low: int, high: int) -> int | None:
    if key not in raw:
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProgramConfigError(f"{where}: {key} must be an integer {low}-{high}, not {value!r}")
    return value


def parse_component(raw: object, where: str) -> Component:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not _PROGRAM_ID.match(raw["id"]):
        raise ProgramConfigError(f"{where}: each component needs an id matching {_PROGRAM_ID.pattern}")
    where = f"{where} component {raw['id']}"
    known = {"id", "description", "age_min", "age_max", "status_sekolah", "disabilitas"}
    if unknown := set(raw) - known:
        raise ProgramConfigError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    terms = []
    age_min, age_max = _int(raw, "age_min", where, 0, 150), _int(raw, "age_max", where, 0, 150)
    if age_min is not None and age_max is not None:
        terms.append(f"u.umur BETWEEN {age_min} AND {age_max}")
    elif age_min is not None:
        terms.append(f"u.umur >= {age_min}")
    elif age_max is not None:
        terms.append(f"u.umur <= {age_max}")
    for field in ("status_sekolah", "disabilitas"):
        if field in raw:
            codes = _codes(raw[field], field, where)
            terms.append(f"x.{field} = ANY(ARRAY{codes}::smallint[])")
    if not terms:
        raise ProgramConfigError(f"{where}: a component needs at least one condition")
    return Component(raw["id"], str(raw.get("description", raw["id"])), " AND ".join(terms))


def parse_program(raw: dict) -> Program:
    pid = raw.get("id")
    if not isinstance(pid, str) or not _PROGRAM_ID.match(pid):
        raise ProgramConfigError(f"program id {pid!r} must match {_PROGRAM_ID.pattern}")
    where = f"program {pid}"
    unit = raw.get("unit", "person")
    if unit not in ("person", "family"):
        raise ProgramConfigError(f"{where}: unit must be 'person' or 'family'")
    desil_max = _int(raw, "desil_max", where, 1, 10)
    if desil_max is None:
        raise ProgramConfigError(f"{where}: desil_max is required")
    rules = [Rule("desil", f"family in desil 1-{desil_max}", f"c.desil <= {desil_max}")]
    age_min, age_max = _int(raw, "age_min", where, 0, 150), _int(raw, "age_max", where, 0, 150)
    if age_min is not None or age_max is not None:
        low, high = age_min or 0, age_max if age_max is not None else 150
        rules.append(
            Rule("age", f"aged {low}-{high} on the reference date", f"c.umur BETWEEN {low} AND {high}")
        )
    if unit == "family":
        rules.append(Rule("head", "listed as the family's head (family program)", "c.hubungan_keluarga = 1"))
    if "exclude_family_status_pekerjaan" in raw:
        codes = _codes(raw["exclude_family_status_pekerjaan"], "status_pekerjaan", where)
        rules.append(
            Rule(
                "occupation",
                f"no family member with status_pekerjaan {codes}",
                f"NOT (c.pekerjaan_keluarga && ARRAY{codes}::smallint[])",
            )
        )
    if "exclude_groundcheck" in raw:
        results = raw["exclude_groundcheck"]
        if not isinstance(results, list) or not set(results) <= set(GROUNDCHECK_RESULTS):
            raise ProgramConfigError(f"{where}: exclude_groundcheck must be a list of {GROUNDCHECK_RESULTS}")
        listed = ", ".join(f"'{r}'" for r in sorted(set(results)))
        rules.append(
            Rule(
                "groundcheck",
                f"last ground check is not {sorted(set(results))}",
                f"c.groundcheck_hasil IS NULL OR c.groundcheck_hasil NOT IN ({listed})",
            )
        )
    components: tuple[Component, ...] = ()
    if "components" in raw:
        if unit != "family" or not isinstance(raw["components"], list) or not raw["components"]:
            raise ProgramConfigError(f"{where}: components are a non-empty list, for a family program")
        components = tuple(parse_component(c, where) for c in raw["components"])
        if len({c.id for c in components}) != len(components):
            raise ProgramConfigError(f"{where}: component ids must be unique")
        rules.append(
            Rule(
                "components",
                "the family has at least one of: " + "; ".join(c.description for c in components),
                f"c.komponen && ARRAY[{_listed(components)}]::text[]",
            )
        )
    rules.append(Rule("alive", "not recorded as deceased by Dukcapil", "NOT c.meninggal"))
    priority = "false"
    if "priority_status_sekolah" in raw:
        codes = _codes(raw["priority_status_sekolah"], "status_sekolah", where)
        priority = f"coalesce(c.status_sekolah = ANY(ARRAY{codes}::smallint[]), false)"
    return Program(pid, str(raw.get("name", pid)), unit, tuple(rules), priority, components)


@dataclass(frozen=True)
class ProgramSet:
    version: str
    programs: tuple[Program, ...]
    document: dict

    @property
    def components(self) -> tuple[Component, ...]:
        """Every program's components, once each: the eligibility context's `komponen` column."""
        seen: dict[str, Component] = {}
        for program in self.programs:
            for component in program.components:
                seen.setdefault(component.id, component)
        return tuple(seen.values())


def parse_programs(document: dict) -> ProgramSet:
    programs = tuple(parse_program(p) for p in document.get("programs", []))
    ids = [p.id for p in programs]
    if not programs or len(set(ids)) != len(ids):
        raise ProgramConfigError("programs must be a non-empty list with unique ids")
    defined: dict[str, str] = {}
    for component in (c for p in programs for c in p.components):
        if defined.setdefault(component.id, component.sql) != component.sql:
            raise ProgramConfigError(f"component {component.id} is defined twice with different conditions")
    return ProgramSet(str(document.get("version", "")), programs, document)


def load_programs(path: Path | None = None) -> ProgramSet:
    path = Path(path) if path else settings().programs_path
    return parse_programs(json.loads(path.read_text(encoding="utf-8")))
