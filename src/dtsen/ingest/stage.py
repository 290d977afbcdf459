"""Stream a delivered CSV file into its staging table with COPY, keeping original line numbers.

PostgreSQL parses the CSV itself (FORMAT csv, ENCODING UTF8), fed in fixed-size byte chunks, so
memory stays flat whatever the file size and no Python code touches individual rows. Records land
first in a temporary table numbered in file order (header included), then move to staging in one
INSERT ... SELECT that maps the file's header to the contract's columns, trims values (empty = NULL)
and turns record numbers into physical line numbers (header = line 1; a quoted newline inside a
field makes a record span several lines).

Nothing COPY is handed goes unaccounted: blank lines are skipped and counted, the lines COPY took
are checked against the lines the file has (`dtsen.ingest.csvscan`), and a file refused as a whole
still reports how many rows it held, so a region sees that every row it sent was refused, and why.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from dtsen.contract import FileSpec
from dtsen.ingest import csvscan
from dtsen.ingest.landing import shown

HEADER_PROBE_LIMIT = 1 << 20  # a header longer than 1 MiB is not a CSV header
# What PostgreSQL appends to a COPY error: "COPY tmp, line 7, column c3: ...". Only the line number
# is kept: the rest may quote the row's values (personal data).
COPY_ERRORS = (
    psycopg.errors.DataError,
    psycopg.errors.BadCopyFileFormat,
    psycopg.errors.CharacterNotInRepertoire,
    psycopg.errors.UntranslatableCharacter,
)
COPY_LINE_RE = re.compile(r"line (\d+)")
BLANK_LINES_SHOWN = 10
TEMP_RAW = sql.Identifier("raw_file")  # pg_temp.raw_file: a file's records as COPY took them


@dataclass
class StageResult:
    code: str | None = None  # FILE_UNREADABLE / FILE_MISSING_COLUMN, or None when staged
    detail: str = ""  # for operators (English), never the file's values
    pesan: str = ""  # for the region (Indonesian): what exactly is wrong with the file
    rows_received: int = 0  # data rows (blank lines excluded), also of a file refused whole
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RawRecords:
    """A file's records as COPY took them (the raw table, aliased `r`), before they are staged: SQL
    over one record, for a caller that decides which records to stage (`stage_file(narrow=...)`)."""

    values: dict[str, sql.Composable]  # contract column -> its trimmed value (NULL when empty or absent)
    raw: dict[str, sql.Composable]  # contract column -> the field as delivered (NULL when absent)
    line_no: sql.Composable  # the record's physical line
    has_value: sql.Composable  # not a blank record (any record after the header that has one is data)
    header_line: int
    records: int  # every record COPY took, the header included


@dataclass(frozen=True)
class Narrowed:
    """What a narrowing caller keeps: the records to stage, and how many data records the file has."""

    keep: sql.Composable  # condition on a record `r` of the raw table
    data_rows: int


class FileRejected(Exception):
    def __init__(self, code: str, detail: str, pesan: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.pesan = pesan


def _unreadable(kind: str, line: int | None, ncols: int = 0) -> FileRejected:
    return FileRejected("FILE_UNREADABLE", *csvscan.describe(kind, line, ncols))


def _record_end(data: bytes, start: int, at_eof: bool) -> int | None:
    """End of the record starting at `start`: the first newline outside quotes."""
    position = start
    while (nl := data.find(b"\n", position)) != -1:
        if data.count(b'"', start, nl) % 2 == 0:
            return nl
        position = nl + 1
    return len(data) if at_eof else None


def _cr_ends_header(head: bytes, start: int) -> bool:
    """Whether the header's line (from `start` to the first LF) holds a lone CR outside quotes: the
    file's lines end in CR only (old Mac format). Such a file would otherwise be one header "line"
    holding the whole file, told a generic "cannot be parsed as CSV" instead of how to save it.
    """
    nl = head.find(b"\n", start)
    # a CR ending the line is a CRLF's (or the file's last byte after a header without rows)
    line = head[start : nl if nl != -1 else len(head)].removesuffix(b"\r")
    cr = line.find(b"\r")
    return cr != -1 and line.count(b'"', 0, cr) % 2 == 0


def read_header(path: Path) -> tuple[list[str], int]:
    """The header record's fields, normalised (case-folded, trimmed), and the line it is on.

    Blank lines before it are skipped. Only the header's own bytes are decoded here: a bad byte
    further down is reported by COPY with its own line.
    """
    with open(path, "rb") as fh:
        head = fh.read(HEADER_PROBE_LIMIT + 1)
    at_eof = len(head) <= HEADER_PROBE_LIMIT
    head = head.removeprefix(csvscan.BOM)
    start, line = 0, 1
    while True:
        nl = head.find(b"\n", start)
        if csvscan.BLANK_LINE.fullmatch(head[start : nl if nl != -1 else len(head)]) is None:
            break
        if nl == -1:
            raise FileRejected(
                "FILE_MISSING_COLUMN",
                "file is empty: no header row",
                "Berkas kosong: tidak ada baris judul (header) maupun data.",
            )
        start, line = nl + 1, line + 1
    if _cr_ends_header(head, start):
        raise _unreadable("cr_line_ends", None)
    end = _record_end(head, start, at_eof)
    if end is None:
        raise FileRejected(
            "FILE_UNREADABLE",
            "no complete header row in the first 1 MiB",
            "Baris judul (header) tidak ditemukan dalam 1 MiB pertama berkas.",
        )
    raw = head[start:end]
    if b"\x00" in raw:
        raise _unreadable("nul_byte", line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _unreadable("not_utf8", line) from exc
    try:
        header = next(csv.reader([text.rstrip("\r")]))
    except csv.Error as exc:
        raise _unreadable("unparsable", line) from exc
    return [name.strip().lower() for name in header], line


def map_columns(header: list[str], spec: FileSpec) -> tuple[dict[str, int], list[str]]:
    """Contract column -> 1-based position in the file; plus warnings (in Indonesian, for the region)."""
    positions: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        if name in positions:
            raise FileRejected(
                "FILE_UNREADABLE",
                f"column {shown(name)!r} appears twice in the header",
                f"Kolom {shown(name)} muncul dua kali pada baris judul (header). Hapus salah satunya lalu "
                "kirim ulang.",
            )
        positions[name] = index
    missing = [c for c in spec.required if c not in positions]
    if missing:
        listed = ", ".join(missing)
        raise FileRejected(
            "FILE_MISSING_COLUMN",
            f"header lacks required column(s): {listed}",
            f"Baris judul (header) tidak memuat kolom wajib: {listed}. Tambahkan kolom tersebut lalu kirim "
            "ulang.",
        )
    known = {c: positions[c] for c in spec.columns if c in positions}
    warnings = []
    extra = [shown(name) or "(tanpa nama)" for name in header if name not in spec.columns]
    if extra:
        warnings.append(f"kolom tidak dikenal diabaikan: {', '.join(extra[:20])}")
    for operation, needed in (("TAMBAH", spec.required_for_tambah), ("HAPUS", spec.required_for_hapus)):
        absent = [c for c in needed if c not in positions]
        if absent:
            warnings.append(
                f"kolom wajib untuk operasi {operation} tidak ada: {', '.join(absent)}; setiap baris "
                f"{operation} ditolak (REQUIRED_MISSING)"
            )
    conditional = set(spec.required_for_tambah) | set(spec.required_for_hapus)
    optional = [
        c for c in spec.columns if c not in positions and c not in conditional and c not in spec.extensions
    ]
    if optional:
        warnings.append(f"kolom opsional tidak ada (dianggap kosong): {', '.join(optional)}")
    return known, warnings


def _copy_raw(
    conn: psycopg.Connection, path: Path, ncols: int, raw_table: sql.Identifier, temporary: bool
) -> tuple[int, csvscan.StreamStats]:
    """COPY every record (header included) into the raw table; returns (records, what was counted)."""
    cols = sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(1, ncols + 1))
    create = (
        sql.SQL("CREATE TEMP TABLE {} (rec bigint GENERATED ALWAYS AS IDENTITY, {}) ON COMMIT DROP")
        if temporary
        else sql.SQL("CREATE UNLOGGED TABLE {} (rec bigint GENERATED ALWAYS AS IDENTITY, {})")
    )
    conn.execute(
        create.format(
            raw_table,
            sql.SQL(", ").join(
                sql.SQL("{} text").format(sql.Identifier(f"c{i}")) for i in range(1, ncols + 1)
            ),
        )
    )
    with conn.cursor() as cur:
        with cur.copy(
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, ENCODING 'UTF8')").format(raw_table, cols)
        ) as copy:
            stats = csvscan.stream_for_copy(path, ncols, copy.write)
        return cur.rowcount, stats


def _newlines_in(column: sql.Composable) -> sql.Composable:
    return sql.SQL("coalesce(length({0}) - length(replace({0}, E'\\n', '')), 0)").format(column)


def _line_numbers(
    conn: psycopg.Connection,
    path: Path,
    records: int,
    stats: csvscan.StreamStats,
    ncols: int,
    raw_table: sql.Identifier,
) -> sql.Composable:
    """The SQL giving each record its physical line, after checking COPY took every line of the file."""
    if records == stats.lines:  # one line per record: nothing embedded, nothing left unread
        return sql.SQL("rec")
    if records > stats.lines:
        raise _unreadable("cr_line_ends", None)
    per_record = sql.SQL(" + ").join(_newlines_in(sql.Identifier(f"c{i}")) for i in range(1, ncols + 1))
    embedded = conn.execute(
        sql.SQL("SELECT coalesce(sum({}), 0) FROM {}").format(per_record, raw_table)
    ).fetchone()[0]
    consumed = records + int(embedded)
    if consumed != stats.lines:  # COPY stopped early (a line holding only \. ends its input)
        line = consumed + 1
        marker = (csvscan.line_text(path, line) or b"").strip() == b"\\."
        raise _unreadable("end_marker" if marker else "not_read_whole", line)
    # line of record k = k + newlines inside all earlier records (header = record 1 = line 1)
    return sql.SQL(
        "rec + coalesce(sum({}) OVER (ORDER BY rec ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
    ).format(per_record)


def _copy_failure(path: Path, exc: psycopg.Error, ncols: int) -> FileRejected:
    """Name the kind of failure and the line a person must fix, never the offending values."""
    diag = exc.diag
    found = COPY_LINE_RE.search(diag.context or "")
    kind, line = csvscan.locate_problem(
        path, diag.sqlstate or "", diag.message_primary or "", int(found.group(1)) if found else None
    )
    return _unreadable(kind, line, ncols)


def stage_file(
    conn: psycopg.Connection,
    path: Path,
    spec: FileSpec,
    *,
    target: sql.Composable,
    key_columns: dict[str, object],
    narrow: Callable[[psycopg.Connection, RawRecords], Narrowed] | None = None,
    raw_table: sql.Identifier | None = None,
) -> StageResult:
    """Stage one file into `target` (a staging table) inside the caller's transaction.

    `key_columns` are constant leading columns (round_seq + submission_pk, or snapshot_pk).
    `narrow`, given the records as COPY took them, may keep only some of them (a Dukcapil extract
    stages only the lines that differ from the reference); every data row is still counted.
    The records land in a temporary table, or in `raw_table` (an unlogged table the caller's
    transaction creates and this drops: one its own statements may read in parallel).
    On a file-level problem nothing is staged, and the result carries the contract code, what is
    wrong (for operators and for the region) and how many rows the file held.
    """
    result = StageResult()
    table = raw_table or TEMP_RAW
    try:
        header, header_line = read_header(path)
        positions, result.warnings = map_columns(header, spec)
        with conn.transaction():  # savepoint: a refused file leaves the caller's transaction usable
            try:
                records, stats = _copy_raw(conn, path, len(header), table, temporary=raw_table is None)
            except COPY_ERRORS as exc:
                raise _copy_failure(path, exc, len(header)) from exc
            except csvscan.ScanError as exc:
                raise _unreadable(exc.kind, exc.line) from exc
            line_expr = _line_numbers(conn, path, records, stats, len(header), table)
            result.rows_received, blanks, first_blanks = _move_to_staging(
                conn,
                spec,
                positions,
                target,
                key_columns,
                line_expr,
                header_line,
                len(header),
                records,
                narrow,
                table,
            )
        if blanks:
            more = ", ..." if blanks > len(first_blanks) else ""
            result.warnings.append(
                f"{blanks} baris kosong dilewati (baris {', '.join(map(str, first_blanks))}{more})"
            )
    except FileRejected as rejected:
        result.code, result.detail, result.pesan = rejected.code, rejected.detail, rejected.pesan
        result.rows_received = csvscan.count_data_rows(path)  # its lines, not the parse that failed
    return result


def _move_to_staging(
    conn: psycopg.Connection,
    spec: FileSpec,
    positions: dict[str, int],
    target: sql.Composable,
    key_columns: dict[str, object],
    line_expr: sql.Composable,
    header_line: int,
    ncols: int,
    records: int,
    narrow: Callable[[psycopg.Connection, RawRecords], Narrowed] | None = None,
    raw_table: sql.Identifier = TEMP_RAW,
) -> tuple[int, int, list[int]]:
    """Data records into staging, blank ones skipped; returns (data rows, blanks, their first lines)."""
    raw = {
        c: sql.SQL("r.{}").format(sql.Identifier(f"c{positions[c]}")) if c in positions else sql.NULL
        for c in spec.columns
    }
    values = {
        c: sql.SQL("nullif(btrim({}, E' \\t\\r'), '')").format(v) if c in positions else sql.NULL
        for c, v in raw.items()
    }
    # blank lines reached COPY as records of empty fields; a record with any value is data
    has_value = sql.SQL("btrim(concat({}), E' \\t\\r') <> ''").format(
        sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(f"c{i}")) for i in range(1, ncols + 1))
    )
    numbered = sql.SQL("(SELECT {line_expr} AS line_no, * FROM {raw}) r WHERE rec > {header}").format(
        line_expr=line_expr, raw=raw_table, header=sql.Literal(header_line)
    )
    narrowed = None
    if narrow is not None:
        narrowed = narrow(conn, RawRecords(values, raw, line_expr, has_value, header_line, records))
    keys = list(key_columns)
    staged = conn.execute(
        sql.SQL(
            "INSERT INTO {target} ({keys}, line_no, {cols}) SELECT {key_values}, line_no::int, {values} "
            "FROM {numbered} AND {has_value} AND {keep}"
        ).format(
            target=target,
            keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
            cols=sql.SQL(", ").join(map(sql.Identifier, spec.columns)),
            key_values=sql.SQL(", ").join(sql.Literal(key_columns[k]) for k in keys),
            values=sql.SQL(", ").join(values.values()),
            numbered=numbered,
            has_value=has_value,
            keep=narrowed.keep if narrowed else sql.SQL("true"),
        )
    ).rowcount
    data_rows = narrowed.data_rows if narrowed else staged
    blanks = records - header_line - data_rows
    first_blanks: list[int] = []
    if blanks:
        first_blanks = [
            row[0]
            for row in conn.execute(
                sql.SQL("SELECT line_no FROM {} AND NOT {} ORDER BY rec LIMIT {}").format(
                    numbered, has_value, sql.Literal(BLANK_LINES_SHOWN)
                )
            )
        ]
    conn.execute(sql.SQL("DROP TABLE {}").format(raw_table))
    return data_rows, blanks, first_blanks
