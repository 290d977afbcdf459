"""Row builders: contract-shaped file rows from state records, and the truth-case record."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dtsen.contract import PEMDA_ANGGOTA, PEMDA_KELUARGA
from dtsen.domain.codes import FAMILY_ATTRIBUTES, MEMBER_ATTRIBUTES

KELUARGA_COLUMNS = list(PEMDA_KELUARGA.columns)
ANGGOTA_COLUMNS = list(PEMDA_ANGGOTA.columns)


def fmt_date(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, str):
        return value
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def keluarga_row(
    operasi: str,
    fam: pd.Series | dict,
    tanggal: dt.date,
    *,
    with_attributes: bool = True,
    only: list[str] | None = None,
    alasan_hapus: str = "",
) -> dict:
    row = {c: "" for c in KELUARGA_COLUMNS}
    row.update(
        operasi=operasi,
        no_kk=str(fam["no_kk"]),
        kode_wilayah=str(fam["kode_wilayah"]),
        tanggal_pendataan=fmt_date(tanggal),
        alasan_hapus=alasan_hapus,
    )
    if operasi == "TAMBAH":
        row["alamat"] = str(fam["alamat"])
    if with_attributes:
        for a in only if only is not None else FAMILY_ATTRIBUTES:
            row[a] = str(int(fam[a]))
    return row


def anggota_row(
    operasi: str,
    per: pd.Series | dict,
    *,
    no_kk: str | None = None,
    full: bool = True,
    nama: str | None = None,
    alasan_hapus: str = "",
    only: dict | None = None,
) -> dict:
    row = {c: "" for c in ANGGOTA_COLUMNS}
    row.update(
        operasi=operasi, nik=str(per["nik"]), no_kk=str(no_kk or per["no_kk"]), alasan_hapus=alasan_hapus
    )
    if full:
        row.update(
            nama=nama if nama is not None else str(per["nama"]),
            jenis_kelamin=str(int(per["jenis_kelamin"])),
            tanggal_lahir=fmt_date(per["tanggal_lahir"]),
            hubungan_keluarga=str(int(per["hubungan_keluarga"])),
        )
        for a in MEMBER_ATTRIBUTES:
            row[a] = str(int(per[a]))
    for key, value in (only or {}).items():
        row[key] = str(value)
    return row


TRUTH_COLUMNS = [
    "round_id",
    "source",
    "submission_id",
    "file",
    "line",
    "key_type",
    "key",
    "case",
    "expected_codes",
    "wins",
    "true_nik",
    "note",
]


@dataclass
class PendingRow:
    row: dict
    case: str = ""
    codes: str = ""
    key_type: str = ""
    wins: str = ""
    true_nik: str = ""
    note: str = ""


@dataclass
class SubmissionRows:
    """The rows of one submission's files, clean and injected, before line numbers exist."""

    source: str
    submission_id: str
    files: dict[str, list[PendingRow]] = field(default_factory=dict)
    bulk: dict[str, list[pd.DataFrame]] = field(default_factory=dict)  # clean rows added in bulk
    injected: int = 0  # rows that carry expected reason codes

    def add_frame(self, file: str, frame: pd.DataFrame) -> None:
        self.bulk.setdefault(file, []).append(frame)

    def count(self) -> int:
        return sum(len(v) for v in self.files.values()) + sum(len(f) for v in self.bulk.values() for f in v)

    def add(
        self, file: str, row: dict, case: str = "", codes: str = "", key_type: str = "", **extra: str
    ) -> None:
        self.files.setdefault(file, []).append(PendingRow(row, case, codes, key_type, **extra))
        self.injected += bool(codes)
