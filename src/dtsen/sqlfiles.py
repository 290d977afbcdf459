"""Named SQL statements kept as reviewed .sql files under sql/.

A file holds blocks introduced by `-- name: <statement>` lines; they are returned in file order, so a
file reads top to bottom as the steps it performs. Parameters use psycopg's %(name)s style.
"""

from __future__ import annotations

import functools
import re

from dtsen.paths import SQL_DIR

NAME_RE = re.compile(r"^-- name: ([a-z0-9_]+)\s*$", re.M)


@functools.cache
def statements(relative_path: str) -> dict[str, str]:
    text = (SQL_DIR / relative_path).read_text(encoding="utf-8")
    parts = NAME_RE.split(text)
    named = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in named:
            raise ValueError(f"{relative_path}: statement {name} defined twice")
        lines = body.strip().splitlines()
        while lines and lines[-1].lstrip().startswith("--"):
            lines.pop()  # a comment before the next block introduces that block, not this one
        named[name] = "\n".join(lines).strip().rstrip(";")
    if not named:
        raise ValueError(f"{relative_path}: no '-- name:' blocks")
    return named
