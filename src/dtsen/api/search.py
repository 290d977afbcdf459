"""Recipients of a published version, as the registry API pages them (sql/api/search.sql).

A search is a program, a version and filters (region-code prefixes, desil). Pages are keyset ranges
of NIK: the boundaries of a search's pages are computed once per (version, program, filters, page
size) and kept in memory. A published version never changes, so they never go stale.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import psycopg

from dtsen.sqlfiles import statements

REGION_PREFIX_LENGTHS = (2, 4, 6, 10)  # province, regency, district, village
_CACHE_SIZE = 512


class SearchError(ValueError):
    """A search the API cannot answer as asked; `code` is the DCI reason code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Search:
    version: int
    program: str
    regions: tuple[str, ...] = ()  # region-code prefixes; empty: all
    desil_min: int = 1
    desil_max: int = 10
    desil_in: tuple[int, ...] = ()

    def logged(self) -> dict:
        """What the disclosure log keeps of the query: the search as parsed, never what was sent."""
        return {
            "version": self.version,
            "program": self.program,
            "kode_wilayah": list(self.regions),
            "desil_min": self.desil_min,
            "desil_max": self.desil_max,
            "desil_in": list(self.desil_in),
        }

    def params(self) -> dict:
        return {
            "version": self.version,
            "program": self.program,
            "patterns": [f"{r}%" for r in self.regions] or None,
            "desil_min": self.desil_min,
            "desil_max": self.desil_max,
            "desil_in": list(self.desil_in) or None,
        }


@dataclass(frozen=True)
class Page:
    rows: list[dict]  # the caller's fields only
    total: int
    page_number: int
    page_size: int
    niks: tuple[int, ...] = ()  # whose records these are, whatever fields were given (the disclosure log's)


class _Boundaries:
    """(search, page size) -> (total, last NIK of each full page), least recently used dropped first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict = OrderedDict()

    def get(self, conn: psycopg.Connection, search: Search, page_size: int) -> tuple[int, list[int]]:
        key = (search, page_size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        rows = conn.execute(
            statements("api/search.sql")["boundaries"], search.params() | {"page_size": page_size}
        ).fetchall()
        value = (int(rows[-1][1]), [r[0] for r in rows[:-1]])
        with self._lock:
            self._items[key] = value
            while len(self._items) > _CACHE_SIZE:
                self._items.popitem(last=False)
        return value


BOUNDARIES = _Boundaries()


def _row(record: tuple, fields: tuple[str, ...]) -> dict:
    nik, no_kk, kode_wilayah, desil, prioritas, nama = record
    full = {
        "nik": f"{nik:016d}",
        "no_kk": f"{no_kk:016d}",
        "kode_wilayah": kode_wilayah,
        "desil": desil,
        "prioritas": prioritas,
        "nama": nama,
    }
    return {f: full[f] for f in fields}


def page(
    conn: psycopg.Connection, search: Search, page_number: int, page_size: int, fields: tuple[str, ...]
) -> Page:
    total, bounds = BOUNDARIES.get(conn, search, page_size)
    if page_number > len(bounds) + 1:
        return Page([], total, page_number, page_size)
    after = bounds[page_number - 2] if page_number > 1 else -1
    records = conn.execute(
        statements("api/search.sql")["page"],
        search.params() | {"page_size": page_size, "after": after, "with_names": "nama" in fields},
    ).fetchall()
    return Page(
        [_row(r, fields) for r in records], total, page_number, page_size, tuple(r[0] for r in records)
    )


def person(
    conn: psycopg.Connection, version: int, programs: tuple[str, ...], nik: int, fields: tuple[str, ...]
) -> list[dict]:
    """One person's entries among the version's recipients of `programs` (empty: not one of them);
    `_nik` is for the disclosure log and is taken out before the answer leaves."""
    records = conn.execute(
        statements("api/search.sql")["person"],
        {"version": version, "programs": list(programs), "nik": nik, "with_names": "nama" in fields},
    ).fetchall()
    return [{"program": r[0], "_nik": r[1]} | _row(r[1:], fields) for r in records]


def parse_predicate(query: object) -> dict:
    """A DCI predicate list -> {attribute: (operator, value)}; every condition is `and`."""
    if not isinstance(query, list) or not query:
        raise SearchError(
            "rjct.search_criteria.invalid", "a predicate query is a non-empty list of expressions"
        )
    found: dict[str, list[tuple[str, object]]] = {}
    for item in query:
        if not isinstance(item, dict) or "expression1" not in item:
            raise SearchError("rjct.search_criteria.invalid", "each predicate item needs expression1")
        if item.get("condition", "and") != "and" and item.get("expression2") is not None:
            raise SearchError("rjct.search_criteria.invalid", "only the `and` condition is supported")
        for key in ("expression1", "expression2"):
            expression = item.get(key)
            if expression is None:
                continue
            try:
                name, op, value = (
                    expression["attribute_name"],
                    expression["operator"],
                    expression["attribute_value"],
                )
            except (KeyError, TypeError) as exc:
                raise SearchError(
                    "rjct.search_criteria.invalid",
                    f"{key} needs attribute_name, operator and attribute_value",
                ) from exc
            if op not in ("eq", "lt", "le", "gt", "ge", "in"):
                raise SearchError(
                    "rjct.search_criteria.invalid", f"operator {op!r} is not one of eq, lt, le, gt, ge, in"
                )
            found.setdefault(str(name), []).append((op, value))
    return found


_ASCII_DIGITS = re.compile(r"[0-9]+")


def _region(value: object) -> str:
    # a string of ASCII digits: str.isdigit() also takes "3²" and Arabic-Indic digits
    text = value if isinstance(value, str) else ""
    if not (_ASCII_DIGITS.fullmatch(text) and len(text) in REGION_PREFIX_LENGTHS):
        raise SearchError(
            "rjct.search_criteria.invalid",
            "kode_wilayah is a region code of 2, 4, 6 or 10 digits (province, regency, district, village)",
        )
    return text


def _desil(value: object) -> int:
    # a JSON integer or a string of ASCII digits: int() of a float overflows on Infinity, and int() of
    # a string takes Unicode digits and spaces
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _ASCII_DIGITS.fullmatch(value) and len(value) <= 2:
        number = int(value)
    else:
        number = 0
    if not 1 <= number <= 10:
        raise SearchError("rjct.search_criteria.invalid", "desil is a whole number from 1 to 10")
    return number


def filters(predicates: dict) -> dict:
    """The region and desil filters of a parsed predicate (Search's keyword arguments)."""
    out: dict = {}
    unknown = sorted(set(predicates) - {"program", "version", "kode_wilayah", "desil"})
    if unknown:
        raise SearchError(
            "rjct.search_criteria.invalid",
            f"unknown attribute {unknown[0]!r}: search by program, version, kode_wilayah and desil",
        )
    for op, value in predicates.get("kode_wilayah", []):
        if op == "eq":
            out.setdefault("regions", []).append(_region(value))
        elif op == "in" and isinstance(value, list) and value:
            out.setdefault("regions", []).extend(_region(v) for v in value)
        else:
            raise SearchError("rjct.search_criteria.invalid", "kode_wilayah takes eq or in (a list)")
    low, high, among = 1, 10, None
    for op, value in predicates.get("desil", []):
        if op == "in":
            if not isinstance(value, list) or not value:
                raise SearchError("rjct.search_criteria.invalid", "desil in takes a non-empty list")
            among = sorted({_desil(v) for v in value})
            continue
        number = _desil(value)
        if op == "eq":
            low, high = max(low, number), min(high, number)
        elif op == "lt":
            high = min(high, number - 1)
        elif op == "le":
            high = min(high, number)
        elif op == "gt":
            low = max(low, number + 1)
        elif op == "ge":
            low = max(low, number)
    if "regions" in out:
        out["regions"] = tuple(sorted(set(out["regions"])))
    out["desil_min"], out["desil_max"] = low, high
    if among is not None:
        out["desil_in"] = tuple(among)
    return out


def single(predicates: dict, name: str) -> object | None:
    """The value of an attribute compared with `eq` once, or None if absent."""
    given = predicates.get(name, [])
    if not given:
        return None
    if len(given) > 1 or given[0][0] != "eq":
        raise SearchError("rjct.search_criteria.invalid", f"{name} takes one eq")
    return given[0][1]
