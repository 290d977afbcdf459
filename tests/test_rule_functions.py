"""The SQL rule functions (validation inside PostgreSQL) agree with the Python domain rules."""

from __future__ import annotations

import datetime as dt
import random
import re

from dtsen.contract import FileKind
from dtsen.domain.identity import (
    PROVINCE_CODES,
    _valid_ddmmyy,
    kk_problem,
    make_nik,
    nik_date,
    nik_mismatch,
    nik_problem,
)
from dtsen.validate.rules import rules_for


def _numbers(seed: int = 7, n: int = 3000) -> list[str]:
    rng = random.Random(seed)
    out = [
        "1111111111111111",
        "1234567890123456",
        "9876543210987654",
        "3273012902000001",
        "3273012902010001",
        "3273016902040001",
        "327301290200000",
        "32730129020000011",
        "3273x12902000001",
        "9973012902000001",
        "3273010000000000",
        "3273013202900001",
        "3273017202900001",
        "3273010013900001",
        "3273014000900001",
        "\u0663273012902000001",  # a non-ASCII digit in a 16-character string
        "32730129020000\n1",
        "",
    ]
    for _ in range(n):
        kind = rng.random()
        if kind < 0.5:  # valid numbers
            born = dt.date(1900, 1, 1) + dt.timedelta(days=rng.randrange(45000))
            out.append(
                make_nik(
                    rng.choice(sorted(PROVINCE_CODES))
                    + f"{rng.randrange(1, 100):02d}{rng.randrange(1, 60):02d}",
                    born,
                    rng.choice((1, 2)),
                    rng.randrange(1, 10000),
                )
            )
        else:  # random digit strings: mostly impossible dates
            out.append("".join(rng.choice("0123456789") for _ in range(16)))
    return out


def test_sql_nik_and_kk_rules_agree_with_python(db):
    numbers = _numbers()
    rows = db.execute(
        "SELECT n, meta.nik_problem(n), meta.kk_problem(n) FROM unnest(%s::text[]) AS n", (numbers,)
    ).fetchall()
    for n, sql_nik, sql_kk in rows:
        assert sql_nik == nik_problem(n), n
        assert sql_kk == kk_problem(n), n


def test_sql_mismatch_agrees_with_python(db):
    rng = random.Random(3)
    cases = []
    for _ in range(2000):
        born = dt.date(1920, 1, 1) + dt.timedelta(days=rng.randrange(38000))
        nik = make_nik("327301", born, rng.choice((1, 2)), 1)
        stated = born if rng.random() < 0.5 else born + dt.timedelta(days=rng.choice((-36525, -1, 1, 31)))
        cases.append((nik, stated, rng.choice((1, 2))))
    rows = db.execute(
        "SELECT meta.nik_mismatch(n, d, s) FROM unnest(%s::text[], %s::date[], %s::int[]) AS t(n, d, s)",
        ([c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases]),
    ).fetchall()
    for (nik, stated, sex), (sql_result,) in zip(cases, rows, strict=True):
        assert sql_result == nik_mismatch(nik, stated, sex)


def test_sql_dates_accept_only_real_calendar_dates(db):
    samples = {
        "2024-02-29": True,
        "2023-02-29": False,
        "2026-02-30": False,
        "14/02/2026": False,
        "2026-13-01": False,
        "0000-01-01": False,
        "1899-12-31": True,
        "2026-1-01": False,
        " 2026-01-01": False,
        "1900-02-29": False,
        "2000-02-29": True,
        "2100-02-29": False,
        "2026-04-31": False,
        "2026-12-31": True,
    }
    got = dict(
        db.execute("SELECT s, meta.is_iso_date(s) FROM unnest(%s::text[]) s", (list(samples),)).fetchall()
    )
    assert got == samples


def test_sql_date_parse_is_the_cast_of_real_dates_and_null_otherwise(db):
    days = [dt.date(1899, 12, 1) + dt.timedelta(days=k) for k in range(0, 75000, 7)]
    impossible = ["2023-02-29", "2026-02-30", "2026-13-01", "0000-01-01", "x", "", None]
    strings = [d.isoformat() for d in days] + impossible
    rows = db.execute(
        "SELECT s, meta.to_date_or_null(s), CASE WHEN meta.is_iso_date(s) THEN s::date END "
        "FROM unnest(%s::text[]) s",
        (strings,),
    ).fetchall()
    assert all(parsed == cast for _, parsed, cast in rows)
    assert sum(parsed is not None for _, parsed, _ in rows) == len(days)


def test_sql_rule_functions_are_inlined_into_the_statements_that_call_them(db):
    # an uninlined SQL function costs ~9 us a call: 9.8 s of a 1M first load's Dukcapil stage went to
    # meta.to_date_or_null before it could be inlined
    plan = "\n".join(
        r[0]
        for r in db.execute(
            "EXPLAIN (VERBOSE) SELECT meta.to_date_or_null(s), meta.nik_problem(s), meta.kk_problem(s), "
            "meta.is_iso_date(s), meta.is_16_digits(s), ref.nik_key(s), meta.nik_mismatch(s, s::date, 1) "
            "FROM unnest('{2026-01-01}'::text[]) s"
        )
    )
    assert "meta." not in plan


def test_sql_placeholder_is_one_digit_repeated_or_a_run(db):
    samples = {
        "1111111111111111": True,
        "1111111111111112": False,
        "2111111111111111": False,
        "1234567890123456": True,
        "9876543210987654": True,
        "3273012902000001": False,
        "7": True,
        None: None,
    }
    got = dict(
        db.execute("SELECT s, meta.is_placeholder(s) FROM unnest(%s::text[]) s", (list(samples),)).fetchall()
    )
    assert got == samples


def test_sql_province_list_is_the_reference_list(db):
    ref = {r[0] for r in db.execute("SELECT kode FROM ref.provinsi")}
    assert ref == set(PROVINCE_CODES)
    checked = db.execute(
        "SELECT count(*) FROM ref.provinsi WHERE meta.number_structure_problem(kode || '73014101900001', 'NIK') IS NULL"
    ).fetchone()[0]
    assert checked == 38


def test_sql_ddmmyy_agrees_with_python_for_every_day_month_and_year(db):
    rows = db.execute(
        "SELECT d, m, y, meta.ddmmyy_exists(d, m, y) FROM generate_series(0, 35) d, "
        "generate_series(0, 13) m, generate_series(0, 99) y"
    ).fetchall()
    assert len(rows) == 36 * 14 * 100
    for d, m, y, exists in rows:
        assert exists == _valid_ddmmyy(d, m, y), (d, m, y)


def _calendar_date(s: str | None) -> bool:
    if s is None or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", s, flags=re.ASCII):
        return False
    try:
        dt.date(int(s[:4]), int(s[5:7]), int(s[8:]))
    except ValueError:
        return False
    return True


def test_sql_date_check_agrees_with_the_calendar_for_every_month_and_day(db):
    years = ["0000", "0001", "0004", "1900", "1999", "2000", "2023", "2024", "2100", "9999"]
    strings = [f"{y}-{m:02d}-{d:02d}" for y in years for m in range(14) for d in range(33)]
    strings += [
        "2026-01-01\n",
        "\uff12\uff10\uff12\uff16-01-01",  # full-width digits
        "2026-01-\u0661\u0662",  # Arabic-Indic digits in the day
        "2026-0a-01",
        "2026-01-1a",
        "2026/01/01",
        "2026-01-001",
        "+026-01-01",
        "2026-1-01",
        "20260101",
        "",
        None,
    ]
    rows = db.execute("SELECT s, meta.is_iso_date(s) FROM unnest(%s::text[]) s", (strings,)).fetchall()
    assert len(rows) == len(strings)
    assert [s for s, ok in rows if ok != _calendar_date(s)] == []


def test_sql_sixteen_digits_means_sixteen_ascii_digits(db):
    samples = {
        "3273012902000001": True,
        "327301290200000": False,
        "32730129020000011": False,
        "3273x12902000001": False,
        "\u0663273012902000001": False,
        "32730129020000\n1": False,
        " 273012902000001": False,
        "": False,
        None: None,
    }
    got = dict(
        db.execute("SELECT s, meta.is_16_digits(s) FROM unnest(%s::text[]) s", (list(samples),)).fetchall()
    )
    assert got == samples
    keys = dict(db.execute("SELECT s, ref.nik_key(s) FROM unnest(%s::text[]) s", (list(samples),)).fetchall())
    assert keys == {s: int(s) if ok else None for s, ok in samples.items()}


def test_nik_mismatch_rule_fires_only_for_a_well_formed_nik_that_disagrees(db):
    # the rule's guard is cheap (16 digits) and NIK_FORMAT's check runs only where the dates disagree:
    # it must still flag exactly the rows the domain rule names
    (rule,) = [r for r in rules_for(FileKind.PEMDA_ANGGOTA) if r.reason_code == "NIK_MISMATCH"]
    rng = random.Random(11)
    numbers = _numbers(seed=5, n=600) + [None]
    dates = ["1990-05-17", "1990-17-05", "2026-02-30", "x", None]
    rows = []
    for nik in numbers:
        stated = _nik_date_of(nik) if rng.random() < 0.6 else rng.choice(dates)
        rows.append((nik, stated, rng.choice(["1", "2", "3", None])))
    got = db.execute(
        f"SELECT nik, tanggal_lahir, jenis_kelamin, ({rule.predicate.as_string(db)}) IS TRUE "  # noqa: S608
        "FROM unnest(%s::text[], %s::text[], %s::text[]) AS t(nik, tanggal_lahir, jenis_kelamin)",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
    ).fetchall()
    expected = [
        nik is not None
        and nik_problem(nik) is None
        and _calendar_date(stated)
        and sex in ("1", "2")
        and nik_mismatch(nik, dt.date.fromisoformat(stated), int(sex)) is not None
        for nik, stated, sex in rows
    ]
    assert [flag for *_, flag in got] == expected
    assert 50 < sum(expected) < len(rows) - 50  # both outcomes well represented


def _nik_date_of(nik: str | None) -> str:
    """A birth date agreeing with a well-formed NIK's digits, else a fixed date."""
    if nik is None or nik_problem(nik) is not None:
        return "1990-05-17"
    d = nik_date(nik)
    # 20yy up to 2026, else 19yy: a 29 February the NIK check accepts (yy % 4 == 0) exists in either
    return f"{2000 + d.yy if d.yy <= 26 else 1900 + d.yy}-{d.month:02d}-{d.day:02d}"
