"""NIK and KK number rules (../shared/domain.md).

NIK = PP KK CC DDMMYY SSSS: registration district, birth date (day + 40 for women), serial.
KK  = PP KK CC DDMMYY SSSS: issuing district, issue date, serial.
There is no check digit. Functions return a problem label (English, for operators) or None; they
never echo the number itself, so their output is safe to log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# The 38 province codes of Kepmendagri 300.2.2-2138/2025. A NIK/KK whose province is not one of
# these is malformed; an unknown regency/district below a valid province is only suspicious
# (regions split over time), so it is not checked here.
PROVINCE_CODES: frozenset[str] = frozenset(
    "11 12 13 14 15 16 17 18 19 21 31 32 33 34 35 36 51 52 53 61 62 63 64 65 "
    "71 72 73 74 75 76 81 82 91 92 93 94 95 96".split()
)
FEMALE_DAY_OFFSET = 40
NUMBER_LENGTH = 16


@dataclass(frozen=True)
class NikDate:
    day: int
    month: int
    yy: int
    jenis_kelamin: int  # 1 male, 2 female


def is_placeholder(number: str) -> bool:
    """All one digit, or a run that steps by +1 or -1 (mod 10) all the way: 1234567890123456."""
    if len(set(number)) == 1:
        return True
    steps = {(int(b) - int(a)) % 10 for a, b in zip(number, number[1:], strict=False)}
    return steps in ({1}, {9})


def _valid_ddmmyy(day: int, month: int, yy: int) -> bool:
    # The century is unknown here; the date must exist in 19yy or 20yy (29 February matters).
    for century in (1900, 2000):
        try:
            dt.date(century + yy, month, day)
            return True
        except ValueError:
            continue
    return False


def _structure_problem(number: str, *, what: str) -> str | None:
    if len(number) != NUMBER_LENGTH or not number.isascii() or not number.isdigit():
        return f"{what} is not 16 digits"
    if is_placeholder(number):
        return f"{what} is a placeholder pattern"
    if number[:2] not in PROVINCE_CODES:
        return f"{what} has an invalid province code"
    if number[12:] == "0000":
        return f"{what} has serial 0000"
    return None


def nik_date(nik: str) -> NikDate:
    """The birth date and sex embedded in a structurally valid NIK."""
    day, month, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    sex = 1
    if day > FEMALE_DAY_OFFSET:
        day -= FEMALE_DAY_OFFSET
        sex = 2
    return NikDate(day, month, yy, sex)


def nik_problem(nik: str) -> str | None:
    """Why `nik` is not a well-formed NIK (NIK_FORMAT), or None."""
    problem = _structure_problem(nik, what="NIK")
    if problem:
        return problem
    raw_day = int(nik[6:8])
    if not (1 <= raw_day <= 31 or FEMALE_DAY_OFFSET + 1 <= raw_day <= FEMALE_DAY_OFFSET + 31):
        return "NIK has an impossible birth day"
    d = nik_date(nik)
    if not _valid_ddmmyy(d.day, d.month, d.yy):
        return "NIK has an impossible birth date"
    return None


def nik_mismatch(nik: str, tanggal_lahir: dt.date, jenis_kelamin: int) -> str | None:
    """Why a well-formed NIK disagrees with the stated birth date / sex (NIK_MISMATCH), or None."""
    d = nik_date(nik)
    if d.jenis_kelamin != jenis_kelamin:
        return "NIK sex digit disagrees with jenis_kelamin"
    if (d.day, d.month, d.yy) != (tanggal_lahir.day, tanggal_lahir.month, tanggal_lahir.year % 100):
        return "NIK birth date disagrees with tanggal_lahir"
    return None


def kk_problem(no_kk: str) -> str | None:
    """Why `no_kk` is not a well-formed family-card number (KK_FORMAT), or None."""
    problem = _structure_problem(no_kk, what="KK")
    if problem:
        return problem
    day, month, yy = int(no_kk[6:8]), int(no_kk[8:10]), int(no_kk[10:12])
    if not _valid_ddmmyy(day, month, yy):
        return "KK has an impossible issue date"
    return None


def make_nik(district: str, tanggal_lahir: dt.date, jenis_kelamin: int, serial: int) -> str:
    """Compose a NIK from a 6-digit registration district, birth date, sex (1/2) and serial 1-9999."""
    if len(district) != 6 or not district.isdigit():
        raise ValueError("district must be a 6-digit code")
    if not 1 <= serial <= 9999:
        raise ValueError("serial must be 1..9999")
    day = tanggal_lahir.day + (FEMALE_DAY_OFFSET if jenis_kelamin == 2 else 0)
    return f"{district}{day:02d}{tanggal_lahir.month:02d}{tanggal_lahir.year % 100:02d}{serial:04d}"


def make_kk(district: str, issued: dt.date, serial: int) -> str:
    """Compose a KK number from the issuing district, issue date and serial 1-9999."""
    if len(district) != 6 or not district.isdigit():
        raise ValueError("district must be a 6-digit code")
    if not 1 <= serial <= 9999:
        raise ValueError("serial must be 1..9999")
    return f"{district}{issued.day:02d}{issued.month:02d}{issued.year % 100:02d}{serial:04d}"


def mask(number: str | None) -> str:
    """Show only the last 4 characters: digits 7-12 of a NIK reveal birth date and sex."""
    if not number:
        return ""
    number = str(number)
    if len(number) <= 4:
        return "*" * len(number)
    return "*" * (len(number) - 4) + number[-4:]
