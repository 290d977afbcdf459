"""Kemendagri region codes (Kepmendagri 300.2.2-2138/2025), shipped compact in data/reference/.

Reading is plain Python (the generator needs it without a database); loading into the warehouse
uses COPY and is idempotent by the file's sha256.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from dtsen.paths import REFERENCE_DIR

WILAYAH_FILE = REFERENCE_DIR / "wilayah_kepmendagri_2025.csv.gz"
DECREE = "Kepmendagri 300.2.2-2138/2025"
LEVEL_BY_LENGTH = {2: "provinsi", 4: "kabupaten", 6: "kecamatan", 10: "desa"}


@dataclass(frozen=True)
class Wilayah:
    """All region levels, keyed by undotted code."""

    provinsi: dict[str, str]
    kabupaten: dict[str, str]
    kecamatan: dict[str, str]
    desa: dict[str, str]

    def villages_of(self, kabupaten: str) -> list[str]:
        return sorted(k for k in self.desa if k.startswith(kabupaten))

    def districts_of(self, kabupaten: str) -> list[str]:
        return sorted(k for k in self.kecamatan if k.startswith(kabupaten))


def wilayah_sha256(path: Path = WILAYAH_FILE) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def iter_wilayah_rows(path: Path = WILAYAH_FILE):
    """Yield (kode, nama) for every region, all levels."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header != ["kode", "nama"]:
            raise ValueError(f"unexpected header in {path.name}: {header}")
        yield from ((kode, nama) for kode, nama in reader)


def read_wilayah(path: Path = WILAYAH_FILE) -> Wilayah:
    levels: dict[str, dict[str, str]] = {name: {} for name in LEVEL_BY_LENGTH.values()}
    for kode, nama in iter_wilayah_rows(path):
        levels[LEVEL_BY_LENGTH[len(kode)]][kode] = nama
    return Wilayah(**levels)


def rebuild_from_package(data_dir: Path, out: Path = WILAYAH_FILE) -> dict[str, int]:
    """Rebuild the compact file from an unpacked idn-area-data `data/` folder."""
    rows: list[tuple[str, str]] = []
    for name in ("provinces.csv", "regencies.csv", "districts.csv", "villages.csv"):
        with open(data_dir / name, newline="", encoding="utf-8") as f:
            rows.extend((r["code"].replace(".", ""), r["name"].strip()) for r in csv.DictReader(f))
    rows.sort()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["kode", "nama"])
    writer.writerows(rows)
    with gzip.GzipFile(out, "wb", mtime=0) as g:  # mtime=0: same input, same bytes
        g.write(buf.getvalue().encode("utf-8"))
    counts: dict[str, int] = {}
    for kode, _ in rows:
        level = LEVEL_BY_LENGTH[len(kode)]
        counts[level] = counts.get(level, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Maintain the shipped Kemendagri region-code file")
    parser.add_argument("--rebuild-from", type=Path, required=True, help="idn-area-data data/ folder")
    args = parser.parse_args(argv)
    print(rebuild_from_package(args.rebuild_from))


if __name__ == "__main__":
    main()
