"""Stream a delivered CSV file into its staging table with COPY, keeping original line numbers.

PostgreSQL parses the CSV itself (FORMAT csv, ENCODING UTF8), fed in fixed-size byte chunks, so
memory stays flat whatever the file size and no Python code touches individual rows. Records land
first in a temporary table numbered in file order (header included), then move to staging in one
INSERT ... SELECT that maps the file's header to the contract's columns, trims values (empty = NULL)
and turns record numbers into physical line numbers (header = line 1; a quoted newline inside a
field makes a record span several lines).
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from dtsen.contract import FileSpec

CHUNK = 1 << 20
HEADER_PROBE_LIMIT = 1 << 20  # a header longer than 1 MiB is not a CSV header
BOM = codecs.BOM_UTF8
# What PostgreSQL appends to a COPY error: "COPY tmp, line 7, column c3: ...". Only the line number
# is kept: the rest may quote the row's values (personal data).
COPY_LINE_RE = re.compile(r"line (\d+)")


@dataclass
class StageResult:
    code: str | None = None  # FILE_UNREADABLE / FILE_MISSING_COLUMN, or None when staged
    detail: str = ""
    rows_received: int = 0
    warnings: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # contract column -> file column position


class FileRejected(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def read_header(path: Path) -> list[str]:
    """The header record's fields, normalised (case-folded, trimmed, BOM dropped)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    text = ""
    with open(path, "rb") as fh:
        while len(text) < HEADER_PROBE_LIMIT:
            chunk = fh.read(64 * 1024)
            try:
                text += decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise FileRejected("FILE_UNREADABLE", "file is not valid UTF-8 (in the header)") from exc
            end = _header_end(text.removeprefix("\ufeff"), at_eof=not chunk)
            if end is not None:
                line = text.removeprefix("\ufeff")[:end]
                if not line.strip():
                    break
                try:
                    header = next(csv.reader([line]))
                except csv.Error as exc:
                    raise FileRejected("FILE_UNREADABLE", "the header line cannot be parsed as CSV") from exc
                return [name.strip().lower() for name in header]
            if not chunk:
                break
    if not text.strip("\ufeff \r\n\t"):
        raise FileRejected("FILE_MISSING_COLUMN", "file is empty: no header row")
    raise FileRejected("FILE_UNREADABLE", "no complete header row in the first 1 MiB")


def _header_end(text: str, *, at_eof: bool) -> int | None:
    """End of the first record: the first newline outside quotes (quotes pair up before it)."""
    start = 0
    while (nl := text.find("\n", start)) != -1:
        if text.count('"', 0, nl) % 2 == 0:
            return nl
        start = nl + 1
    return len(text) if at_eof else None


def map_columns(header: list[str], spec: FileSpec) -> tuple[dict[str, int], list[str]]:
    """Contract column -> 1-based position in the file; plus warnings for extra columns."""
    positions: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        if name in positions:
            raise FileRejected("FILE_UNREADABLE", f"column {name!r} appears twice in the header")
        positions[name] = index
    missing = [c for c in spec.required if c not in positions]
    if missing:
        raise FileRejected("FILE_MISSING_COLUMN", f"header lacks required column(s): {', '.join(missing)}")
    known = {c: positions[c] for c in spec.columns if c in positions}
    extra = [name for name in header if name not in spec.columns]
    warnings = [f"kolom tidak dikenal diabaikan: {', '.join(extra[:20])}"] if extra else []
    absent = [c for c in spec.columns if c not in positions]
    if absent:
        warnings.append(f"kolom opsional tidak ada (dianggap kosong): {', '.join(absent)}")
    return known, warnings


def _copy_raw(conn: psycopg.Connection, path: Path, ncols: int) -> tuple[int, int]:
    """COPY every record (header included) into pg_temp.raw_file; returns (records, newlines)."""
    cols = sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(1, ncols + 1))
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE raw_file (rec bigint GENERATED ALWAYS AS IDENTITY, {}) ON COMMIT DROP"
        ).format(
            sql.SQL(", ").join(
                sql.SQL("{} text").format(sql.Identifier(f"c{i}")) for i in range(1, ncols + 1)
            )
        )
    )
    newlines = 0
    with conn.cursor() as cur, open(path, "rb") as fh:
        with cur.copy(
            sql.SQL("COPY raw_file ({}) FROM STDIN (FORMAT csv, ENCODING 'UTF8')").format(cols)
        ) as copy:
            first = True
            while chunk := fh.read(CHUNK):
                if first:
                    chunk = chunk.removeprefix(BOM)
                    first = False
                newlines += chunk.count(b"\n")
                copy.write(chunk)
        records = cur.rowcount
    return records, newlines


def stage_file(
    conn: psycopg.Connection,
    path: Path,
    spec: FileSpec,
    *,
    target: sql.Composable,
    key_columns: dict[str, object],
) -> StageResult:
    """Stage one file into `target` (a staging table) inside the caller's transaction.

    `key_columns` are constant leading columns (round_seq + submission_pk, or snapshot_pk).
    On a file-level problem nothing is staged and the result carries the contract code.
    """
    result = StageResult()
    try:
        header = read_header(path)
        positions, result.warnings = map_columns(header, spec)
        with conn.transaction():  # savepoint: a failed COPY leaves the caller's transaction usable
            records, newlines = _copy_raw(conn, path, len(header))
            result.rows_received = max(records - 1, 0)
            _move_to_staging(conn, spec, positions, target, key_columns, embedded_newlines=newlines > records)
    except FileRejected as rejected:
        result.code, result.detail = rejected.code, rejected.detail
    except (
        psycopg.errors.DataError,
        psycopg.errors.BadCopyFileFormat,
        psycopg.errors.CharacterNotInRepertoire,
        psycopg.errors.UntranslatableCharacter,
    ) as exc:
        result.code = "FILE_UNREADABLE"
        result.detail = _copy_error_detail(exc)
    return result


def _copy_error_detail(exc: psycopg.Error) -> str:
    """Name the kind of failure and the record number, never the offending values."""
    diag = exc.diag
    where = COPY_LINE_RE.search(diag.context or "")
    kind = {
        "22021": "bytes that are not valid UTF-8",
        "22P04": "a malformed CSV record (wrong number of fields or a stray quote)",
        "22P05": "a character PostgreSQL cannot store (e.g. a NUL byte)",
    }.get(diag.sqlstate or "", "data PostgreSQL could not parse as CSV")
    return f"file has {kind}" + (f" near line {where.group(1)}" if where else "")


def _move_to_staging(
    conn: psycopg.Connection,
    spec: FileSpec,
    positions: dict[str, int],
    target: sql.Composable,
    key_columns: dict[str, object],
    *,
    embedded_newlines: bool,
) -> None:
    values = [
        sql.SQL("nullif(btrim({}, E' \\t\\r'), '')").format(sql.Identifier(f"c{positions[c]}"))
        if c in positions
        else sql.NULL
        for c in spec.columns
    ]
    if embedded_newlines:
        # line of record k = k + newlines inside all earlier records (header = record 1 = line 1)
        nl = sql.SQL(" + ").join(
            sql.SQL("coalesce(length({0}) - length(replace({0}, E'\\n', '')), 0)").format(
                sql.Identifier(f"c{i}")
            )
            for i in sorted(positions.values())
        )
        line_expr = sql.SQL(
            "rec + coalesce(sum({}) OVER (ORDER BY rec ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
        ).format(nl)
    else:
        line_expr = sql.SQL("rec")
    keys = list(key_columns)
    query = sql.SQL(
        "INSERT INTO {target} ({keys}, line_no, {cols}) "
        "SELECT {key_values}, line_no::int, {values} FROM ("
        "  SELECT {line_expr} AS line_no, * FROM raw_file) r "
        "WHERE rec > 1"
    ).format(
        target=target,
        keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
        cols=sql.SQL(", ").join(map(sql.Identifier, spec.columns)),
        key_values=sql.SQL(", ").join(sql.Literal(key_columns[k]) for k in keys),
        values=sql.SQL(", ").join(values),
        line_expr=line_expr,
    )
    conn.execute(query)
    conn.execute("DROP TABLE raw_file")
