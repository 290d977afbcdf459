"""NIK and KK rules from domain.md."""

from __future__ import annotations

import datetime as dt

import pytest

from dtsen.domain.identity import (
    is_placeholder,
    kk_problem,
    make_kk,
    make_nik,
    mask,
    nik_date,
    nik_mismatch,
    nik_problem,
)


def test_female_nik_carries_day_plus_40_and_round_trips():
    nik = make_nik("327301", dt.date(1985, 3, 7), 2, 12)
    assert nik == "3273014703850012"
    assert nik_problem(nik) is None
    d = nik_date(nik)
    assert (d.day, d.month, d.yy, d.jenis_kelamin) == (7, 3, 85, 2)
    assert nik_mismatch(nik, dt.date(1985, 3, 7), 2) is None


@pytest.mark.parametrize(
    ("nik", "problem"),
    [
        ("327301470385001", "not 16 digits"),
        ("32730147038500a2", "not 16 digits"),
        ("３２７３０１４７０３８５００１２", "not 16 digits"),  # full-width digits are not ASCII digits
        ("3273014703850000", "serial 0000"),
        ("3273013203850012", "impossible birth day"),
        ("3273010713850012", "impossible birth date"),
        ("1111111111111111", "placeholder"),
        ("1234567890123456", "placeholder"),
        ("9912014703850012", "invalid province"),
    ],
)
def test_malformed_nik_is_named(nik, problem):
    assert problem in (nik_problem(nik) or "")


def test_29_february_is_valid_when_some_century_has_it():
    assert nik_problem(make_nik("327301", dt.date(2000, 2, 29), 1, 1)) is None
    # 29-02-01 exists neither in 1901 nor 2001
    assert "impossible" in nik_problem("3273012902010001")


def test_conventional_unknown_birth_dates_are_legitimate():
    for born in (dt.date(1960, 12, 31), dt.date(2010, 7, 1), dt.date(1975, 5, 15)):
        assert nik_problem(make_nik("110101", born, 1, 1)) is None


def test_nik_mismatch_names_sex_and_date():
    nik = make_nik("327301", dt.date(1990, 1, 2), 1, 5)
    assert "sex" in nik_mismatch(nik, dt.date(1990, 1, 2), 2)
    assert "birth date" in nik_mismatch(nik, dt.date(1990, 1, 3), 1)
    assert "birth date" in nik_mismatch(nik, dt.date(1890, 1, 3), 1)


def test_kk_issue_date_must_exist():
    assert kk_problem(make_kk("327301", dt.date(2019, 11, 30), 77)) is None
    assert "impossible issue date" in kk_problem("3273013111190077")


def test_placeholders_include_descending_runs():
    assert is_placeholder("9876543210987654")
    assert not is_placeholder("3273014703850012")


def test_mask_shows_only_last_four():
    assert mask("3273014703850012") == "************0012"
    assert mask("") == ""
    assert mask("123") == "***"
