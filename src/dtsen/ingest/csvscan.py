"""What is read from a delivered CSV file's bytes besides PostgreSQL's own parse.

PostgreSQL's COPY parses every file, but four things must not be left to it:
- **Blank lines** (empty, or only spaces, tabs and commas) would make COPY refuse the whole file.
  Every CSV reader users know skips them, so on the way to COPY each blank line outside a quoted field
  becomes a record of empty fields: it keeps its line number and is skipped (and counted) when the
  records move to staging.
- **The number of lines** the file has: COPY stops without an error at a line holding only `\\.`
  (its end-of-data marker), so what COPY took is compared with the lines counted here.
- **Where a broken file breaks**: COPY's own line numbers are those of the end of a record, or of
  the end of the file for an unclosed quote; `locate_problem` finds the line a person must fix.
- **How many rows a refused file held**: not from a CSV parse (the one that failed), but from its
  non-blank physical lines (`count_data_rows`), so every line a region sent is counted as rejected.

Quotes are tracked by parity (RFC 4180 escapes a quote by doubling it, which keeps the parity), so a
blank line inside a multi-line quoted field stays data. Everything here is C-speed byte scanning on
the happy path; the line-by-line pass of `locate_problem` runs only for a file COPY refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
MAX_LINE_BYTES = 64 << 20  # a line longer than this is not a CSV record of this contract
BOM = b"\xef\xbb\xbf"
BLANK_LINE = re.compile(rb"^[ \t,]*\r?$", re.M)


class ScanError(Exception):
    """A file that cannot be handed to COPY; `line` is 1-based, `kind` a key of PROBLEMS."""

    def __init__(self, kind: str, line: int | None):
        super().__init__(kind)
        self.kind = kind
        self.line = line


@dataclass
class StreamStats:
    newlines: int = 0
    ends_with_newline: bool = True
    blank_lines: int = 0
    unbalanced_quote: bool = False

    @property
    def lines(self) -> int:
        """Physical lines in the file (a last line without a newline counts)."""
        return self.newlines + (0 if self.ends_with_newline else 1)


def _complete_lines(read: Callable[[int], bytes]):
    """The file's bytes (BOM dropped) in pieces that end at a newline; the last piece may not."""
    carry = b""
    first = True
    while chunk := read(CHUNK):
        if first:
            chunk, first = chunk.removeprefix(BOM), False
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            if len(carry) > MAX_LINE_BYTES:
                raise ScanError("line_too_long", None)
            continue
        carry = data[cut:]
        yield data[:cut]
    if carry:
        yield carry


def _fill_blank_lines(piece: bytes, parity: int, filler: bytes) -> tuple[bytes, int, int]:
    """Blank lines outside quotes replaced by `filler`; returns (bytes, parity after, blanks)."""
    out, copied, counted, blanks = [], 0, 0, 0
    for match in BLANK_LINE.finditer(piece):
        start = match.start()
        if start == len(piece):  # the empty "line" after the final newline
            break
        parity ^= piece.count(b'"', counted, start) & 1
        counted = start
        if parity:  # inside a quoted field: a blank line there is data
            continue
        out += [piece[copied:start], filler, b"\r" if match.group().endswith(b"\r") else b""]
        copied = match.end()
        blanks += 1
    parity ^= piece.count(b'"', counted) & 1
    if not out:
        return piece, parity, 0
    out.append(piece[copied:])
    return b"".join(out), parity, blanks


def stream_for_copy(path: Path, ncols: int, write: Callable[[bytes], object]) -> StreamStats:
    """Feed `write` the file as COPY should read it, counting what COPY is checked against."""
    stats = StreamStats()
    filler = b"," * (ncols - 1)
    parity = 0
    with open(path, "rb") as fh:
        for piece in _complete_lines(fh.read):
            stats.newlines += piece.count(b"\n")
            stats.ends_with_newline = piece.endswith(b"\n")
            piece, parity, blanks = _fill_blank_lines(piece, parity, filler)
            stats.blank_lines += blanks
            write(piece)
    stats.unbalanced_quote = bool(parity)
    return stats


BLANK_LINES = re.compile(rb"^[ \t,]*\n", re.M)


def count_data_rows(path: Path) -> int:
    """The rows of a file refused whole: its non-blank physical lines after the header.

    Counted from the bytes alone, never from a CSV parse, which is what failed (an unclosed quote would
    make the rest of the file one "record"; CR-only line ends, one line). A line ends at LF, CRLF or a
    lone CR; blank lines (empty, or only spaces, tabs and commas) are no rows, as in an accepted file.
    A quoted field spanning lines counts once per line here: in a refused file quotes cannot be trusted.
    Memory stays bounded by the chunk size, however long the lines.
    """
    lines = 0  # complete non-blank lines (the header among them)
    open_line = False  # the line the last chunk ended in holds a non-blank byte
    held = b""  # a CR ending the last chunk: a CRLF may be split between two chunks
    with open(path, "rb") as fh:
        first = True
        while chunk := fh.read(CHUNK):
            if first:
                chunk, first = chunk.removeprefix(BOM), False
            data = held + chunk
            held = b"\r" if data.endswith(b"\r") else b""
            data = data[: len(data) - len(held)].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            cut = data.rfind(b"\n") + 1
            if cut:
                complete = data[:cut]
                blanks = len(BLANK_LINES.findall(complete))
                if open_line and BLANK_LINES.match(complete):  # the line's start came in an earlier chunk
                    blanks -= 1
                lines += complete.count(b"\n") - blanks
                open_line = False
            open_line = open_line or bool(data[cut:].strip(b" \t,"))
    lines += open_line  # a last line without a line end (a held CR was one: its line is counted)
    return max(lines - 1, 0)


# kind -> (English for operators, Indonesian for the region); {line} and {ncols} are filled in
PROBLEMS: dict[str, tuple[str, str]] = {
    "not_utf8": (
        "line {line} has bytes that are not valid UTF-8",
        "Baris {line} memuat karakter yang bukan UTF-8. Simpan ulang berkas sebagai CSV UTF-8 lalu kirim ulang.",
    ),
    "nul_byte": (
        "line {line} holds a NUL byte",
        "Baris {line} memuat karakter NUL (bita 0), yang tidak boleh ada dalam berkas CSV. "
        "Simpan ulang berkas sebagai CSV UTF-8 lalu kirim ulang.",
    ),
    "unclosed_quote": (
        "the quote opened on line {line} is never closed, so the rest of the file cannot be read",
        'Tanda kutip (") yang dibuka pada baris {line} tidak pernah ditutup, sehingga sisa berkas tidak '
        "dapat dibaca. Perbaiki tanda kutip pada baris tersebut lalu kirim ulang.",
    ),
    "field_count": (
        "line {line} does not have the {ncols} columns of the header",
        "Baris {line} tidak memiliki {ncols} kolom seperti baris judul (header). Periksa tanda koma dan "
        "tanda kutip pada baris tersebut lalu kirim ulang.",
    ),
    "end_marker": (
        "line {line} holds only \\. , which PostgreSQL reads as the end of the data",
        "Baris {line} hanya berisi \\. yang dibaca sebagai akhir data, sehingga baris sesudahnya tidak "
        "terbaca. Hapus baris tersebut lalu kirim ulang.",
    ),
    "not_read_whole": (
        "the file could not be read whole: reading stopped at line {line}",
        "Berkas tidak dapat dibaca seluruhnya: pembacaan berhenti pada baris {line}. Periksa baris "
        "tersebut lalu kirim ulang.",
    ),
    "cr_line_ends": (
        "lines end in a carriage return only (old Mac format)",
        "Baris-baris berkas diakhiri CR saja. Simpan ulang berkas sebagai CSV dengan akhir baris LF atau "
        "CRLF lalu kirim ulang.",
    ),
    "line_too_long": (
        "a line is longer than 64 MiB",
        "Ada baris yang lebih panjang dari 64 MiB; berkas ini tidak dapat dibaca sebagai CSV.",
    ),
    "unparsable": (
        "data PostgreSQL could not parse as CSV near line {line}",
        "Berkas tidak dapat dibaca sebagai CSV di sekitar baris {line}. Simpan ulang sebagai CSV "
        "(UTF-8, dipisah koma) lalu kirim ulang.",
    ),
}


def describe(kind: str, line: int | None, ncols: int = 0) -> tuple[str, str]:
    """(operator detail, Indonesian message) of a problem; never quotes the file's content."""
    english, indonesian = PROBLEMS[kind]
    return english.format(line=line, ncols=ncols), indonesian.format(line=line, ncols=ncols)


def line_text(path: Path, line: int) -> bytes | None:
    """Physical line `line` of the file (without its newline), or None past the end."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == line:
                return raw.rstrip(b"\r\n").removeprefix(BOM if number == 1 else b"")
    return None


def locate_problem(path: Path, sqlstate: str, message: str, copy_line: int | None) -> tuple[str, int | None]:
    """The kind and first line of the problem COPY reported, found line by line (error path only).

    `copy_line` is COPY's own line number: for a malformed record it is the record's last line, which
    is mapped back to the line the record starts on.
    """
    parity, record_start, opened = 0, 1, None
    want_encoding = sqlstate == "22021"
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1:
                raw = raw.removeprefix(BOM)
            if parity == 0:
                record_start = number
            if want_encoding:
                if b"\x00" in raw:
                    return "nul_byte", number
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return "not_utf8", number
            if raw.count(b'"') & 1:
                parity ^= 1
                if parity:
                    opened = number
            if number == copy_line and "carriage return" in message:
                # "unquoted carriage return found in data": LF or CRLF lines mixed with CR-only ones
                return "cr_line_ends", record_start
            if number == copy_line and not want_encoding and "quoted field" not in message:
                return ("field_count" if "column" in message else "unparsable"), record_start
    if parity and opened is not None:
        return "unclosed_quote", opened
    return "unparsable", copy_line
