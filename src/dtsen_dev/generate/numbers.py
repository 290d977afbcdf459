"""Unique NIK and KK numbers without a set that grows with the population.

A NIK's serial is unique per (registration district, DDMMYY); a KK's per (issuing district, DDMMYY).
The year has two digits, so someone born in 1925 and someone born in 2025 share a cell. Counters
live in fixed-size arrays indexed by (district among the generated regencies, DDMMYY): memory is
bounded by the reference list, not by how many people exist. Allocation is vectorised: ranks within
each cell come from a sort.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

BIRTH_EPOCH = dt.date(1920, 1, 1)
ISSUE_EPOCH = dt.date(2000, 1, 1)
CELLS = 100 * 12 * 31  # DDMMYY


def ddmmyy_cell(dates: np.ndarray) -> np.ndarray:
    d = dates.astype("datetime64[D]")
    years = d.astype("datetime64[Y]").astype(np.int64) + 1970
    months = d.astype("datetime64[M]").astype(np.int64) % 12
    days = (d - d.astype("datetime64[M]")).astype(np.int64)
    return ((years % 100) * 12 + months) * 31 + days


class SerialCounters:
    def __init__(self, districts: list[str]):
        self.districts = list(districts)
        self.index = {d: i for i, d in enumerate(self.districts)}
        self.counts = np.zeros((len(self.districts), CELLS), dtype=np.uint16)

    def is_taken(self, district_idx: np.ndarray, dates: np.ndarray, serials: np.ndarray) -> np.ndarray:
        cell = district_idx.astype(np.int64) * CELLS + ddmmyy_cell(dates)
        return serials <= self.counts.reshape(-1)[cell]

    def allocate(self, district_idx: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """Next free serials (1..9999) for each (district, DDMMYY) pair, in input order."""
        cell = district_idx.astype(np.int64) * CELLS + ddmmyy_cell(dates)
        order = np.argsort(cell, kind="stable")
        sorted_cell = cell[order]
        starts = (
            np.r_[0, np.flatnonzero(np.diff(sorted_cell)) + 1] if len(cell) else np.array([], dtype=np.int64)
        )
        rank_sorted = np.arange(len(cell)) - np.repeat(starts, np.diff(np.r_[starts, len(cell)]))
        rank = np.empty(len(cell), dtype=np.int64)
        rank[order] = rank_sorted
        flat = self.counts.reshape(-1)
        serial = flat[cell].astype(np.int64) + rank + 1
        if len(serial) and serial.max() > 9999:
            raise OverflowError("more than 9999 numbers for one district and day")
        np.maximum.at(flat, cell, serial.astype(np.uint16))
        return serial

    def save(self, path: Path) -> None:
        np.save(path, self.counts)

    def load(self, path: Path) -> None:
        self.counts = np.load(path)


def compose(
    district_codes: np.ndarray, dates: np.ndarray, serials: np.ndarray, female: np.ndarray | None = None
) -> np.ndarray:
    """16-digit numbers PPKKCC DDMMYY SSSS as strings (day + 40 for women when `female` is given)."""
    d = dates.astype("datetime64[D]")
    years = d.astype("datetime64[Y]").astype(int) + 1970
    months = (d.astype("datetime64[M]").astype(int) % 12) + 1
    days = (d - d.astype("datetime64[M]")).astype(int) + 1
    if female is not None:
        days = days + np.where(female, 40, 0)
    ddmmyy = days * 10000 + months * 100 + (years % 100)
    parts = np.char.add(district_codes.astype("U6"), np.char.zfill(ddmmyy.astype("U6"), 6))
    return np.char.add(parts, np.char.zfill(serials.astype("U4"), 4))
