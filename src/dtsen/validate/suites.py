"""Write the per-file-kind Great Expectations suites (expectations/*.json) from the contract.

The JSON files are what validation runs and what row-level rejections are derived from; this module
only authors them, so a rule is changed here, the suites are rewritten (`python -m
dtsen.validate.suites`), and the diff of the JSON is what gets reviewed. A test fails when the
committed suites and this authoring code disagree.

Every expectation carries `meta.reason_code` and `meta.field`: the contract code and column a failing
row is rejected with. Batches are query assets over staging whose rows also carry `_cutoff` (the
round's cut-off date, for "date in the future") and `_regency` (the submitting regency).

Quoting: unexpected_rows_query goes through str.format, so regex braces are doubled ({{16}}).
"""

from __future__ import annotations

import json
from pathlib import Path

from dtsen.contract import FILE_SPECS, TEXT_MAX_CHARS, FileKind, FileSpec
from dtsen.domain import codes
from dtsen.paths import EXPECTATIONS_DIR

SUITE_PREFIX = "dtsen_"


def suite_name(kind: FileKind) -> str:
    return f"{SUITE_PREFIX}{kind.value}"


def suite_path(kind: FileKind, directory: Path = EXPECTATIONS_DIR) -> Path:
    return directory / f"{suite_name(kind)}.json"


def _meta(code: str, field: str) -> dict:
    return {"reason_code": code, "field": field}


def _not_null(column: str) -> dict:
    return {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": column},
        "meta": _meta("REQUIRED_MISSING", column),
    }


def _in_set(column: str, values: list[str], code: str = "CODE_OUT_OF_DOMAIN") -> dict:
    return {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": column, "value_set": values},
        "meta": _meta(code, column),
    }


def _rows(code: str, field: str, where: str, description: str) -> dict:
    return {
        "type": "unexpected_rows_expectation",
        "kwargs": {"unexpected_rows_query": f"SELECT line_no FROM {{batch}} WHERE {where}"},
        "meta": _meta(code, field),
        "description": description,
    }


def _coded_values(field: codes.CodedField) -> list[str]:
    return [str(v) for v in field.codes]


def _code_rule(field: codes.CodedField) -> dict:
    if field.value_range is None:
        return _in_set(field.name, _coded_values(field))
    lo, hi = field.value_range
    col = field.name
    listed = ", ".join(f"'{v}'" for v in field.codes)
    not_listed = f"{col} NOT IN ({listed}) AND " if field.codes else ""
    # CASE, not AND: the cast must only run on digit strings.
    return _rows(
        "CODE_OUT_OF_DOMAIN",
        col,
        f"{col} IS NOT NULL AND {not_listed}"
        f"CASE WHEN {col} ~ '^[0-9]{{{{1,12}}}}$' THEN {col}::bigint NOT BETWEEN {lo} AND {hi} ELSE true END",
        f"{col} is {'one of ' + listed + ' or ' if field.codes else ''}an integer {lo}-{hi}",
    )


def _date_rule(column: str) -> dict:
    return _rows(
        "DATE_INVALID",
        column,
        f"{column} IS NOT NULL AND CASE WHEN meta.is_iso_date({column}) "
        f"THEN {column}::date < DATE '1900-01-01' OR {column}::date > _cutoff ELSE true END",
        f"{column} is a real YYYY-MM-DD date from 1900 up to the round's cut-off",
    )


def _required_for(operation: str, column: str) -> dict:
    return _rows(
        "REQUIRED_MISSING",
        column,
        f"operasi = '{operation}' AND {column} IS NULL",
        f"{column} is required when operasi = {operation}",
    )


NIK_FORMAT = _rows(
    "NIK_FORMAT",
    "nik",
    "meta.nik_problem(nik) IS NOT NULL",
    "nik is 16 digits, a valid province, a real embedded birth date and serial > 0000",
)
KK_FORMAT = _rows(
    "KK_FORMAT",
    "no_kk",
    "meta.kk_problem(no_kk) IS NOT NULL",
    "no_kk is 16 digits, a valid province, a real issue date and serial > 0000",
)
# Only for a NIK without NIK_FORMAT's problems. The casts need only 16 digits, so the costly
# nik_problem (already run once per row by NIK_FORMAT) runs only where the dates disagree.
NIK_MISMATCH = _rows(
    "NIK_MISMATCH",
    "nik",
    "CASE WHEN meta.is_16_digits(nik) AND meta.is_iso_date(tanggal_lahir) AND jenis_kelamin IN ('1', '2') "
    "THEN meta.nik_mismatch(nik, tanggal_lahir::date, jenis_kelamin::int) IS NOT NULL "
    "AND meta.nik_problem(nik) IS NULL ELSE false END",
    "the birth date and sex embedded in nik agree with tanggal_lahir and jenis_kelamin",
)
CASE_ID_FORMAT = _rows(
    "CODE_OUT_OF_DOMAIN",
    "id_kasus",
    # no braces: GE formats {batch} into the query
    "id_kasus IS NOT NULL AND (id_kasus !~ '^[1-9][0-9]*$' OR length(id_kasus) > 18)",
    "id_kasus, when given, is a case number (a positive integer)",
)


def _aduan_rules() -> list[dict]:
    """aduan.csv (an extension): the subject named by no_kk and/or nik, each reason of its type, and a
    reporter reference that is a reference (letters, digits, _ . : -), not a name. Whether the subject
    is in the registry, and the program, are cross rules (sql/validate/cross_rules.sql)."""
    sanggah, usul = (", ".join(f"'{a}'" for a in codes.ALASAN_ADUAN[j]) for j in ("SANGGAH", "USUL"))
    return [
        _in_set("jenis", list(codes.JENIS_ADUAN)),
        _in_set("alasan", [a for j in codes.JENIS_ADUAN for a in codes.ALASAN_ADUAN[j]]),
        _rows(
            "CODE_OUT_OF_DOMAIN",
            "alasan",
            f"(jenis = 'SANGGAH' AND alasan IN ({usul})) OR (jenis = 'USUL' AND alasan IN ({sanggah}))",
            "alasan is one of the reasons of its jenis",
        ),
        _rows(
            "REQUIRED_MISSING",
            "no_kk",
            "no_kk IS NULL AND nik IS NULL",
            "the subject family is named by no_kk, or by a member's nik",
        ),
        _rows(
            "REQUIRED_MISSING",
            "program",
            "jenis = 'SANGGAH' AND program IS NULL",
            "program is required when jenis = SANGGAH",
        ),
        _rows(
            "KK_FORMAT",
            "no_kk",
            "no_kk IS NOT NULL AND meta.kk_problem(no_kk) IS NOT NULL",
            "no_kk, when given, is 16 digits, a valid province, a real issue date and serial > 0000",
        ),
        _rows(
            "NIK_FORMAT",
            "nik",
            "nik IS NOT NULL AND meta.nik_problem(nik) IS NOT NULL",
            "nik, when given, is 16 digits, a valid province, a real embedded birth date and serial > 0000",
        ),
        _date_rule("tanggal_aduan"),
        _rows(
            "CODE_OUT_OF_DOMAIN",
            "pelapor_ref",
            "pelapor_ref !~ '^[A-Za-z0-9_.:-]+$'",  # no braces: GE formats {batch} into the query
            "pelapor_ref is the channel's opaque reference (letters, digits, _ . : -), never a name",
        ),
    ]


# Uncorrelated lookups (a hashed subplan), not EXISTS: a correlated one became a join filter, and
# PostgreSQL then kept the one pass over a file's rows in one process.
WILAYAH_UNKNOWN = _rows(
    "WILAYAH_UNKNOWN",
    "kode_wilayah",
    "kode_wilayah IS NOT NULL AND kode_wilayah NOT IN (SELECT d.kode FROM ref.desa d)",
    "kode_wilayah is a village code of Kepmendagri 300.2.2-2138/2025",
)
WILAYAH_OUT_OF_SCOPE = _rows(
    "WILAYAH_OUT_OF_SCOPE",
    "kode_wilayah",
    "kode_wilayah IN (SELECT d.kode FROM ref.desa d) AND left(kode_wilayah, 4) <> _regency",
    "the village lies inside the submitting regency",
)


def _max_length(column: str) -> dict:
    return {
        "type": "expect_column_value_lengths_to_be_between",
        "kwargs": {"column": column, "max_value": TEXT_MAX_CHARS[column]},
        "meta": _meta("CODE_OUT_OF_DOMAIN", column),
    }


def _text_limits(spec: FileSpec) -> list[dict]:
    return [_max_length(c) for c in spec.columns if c in TEXT_MAX_CHARS]


def _operation_rules(spec: FileSpec, alasan: tuple[str, ...]) -> list[dict]:
    rules = [_in_set("operasi", list(codes.OPERASI))]
    rules += [_required_for("TAMBAH", c) for c in spec.required_for_tambah]
    rules += [_required_for("HAPUS", c) for c in spec.required_for_hapus]
    rules.append(_in_set("alasan_hapus", list(alasan)))
    return rules


def build_suite(kind: FileKind) -> dict:
    spec = FILE_SPECS[kind]
    expectations = [_not_null(c) for c in spec.required]
    family_codes = [_code_rule(f) for f in codes.FAMILY_ATTRIBUTE_FIELDS]
    if kind is FileKind.PEMDA_KELUARGA:
        expectations += _operation_rules(spec, codes.ALASAN_HAPUS_KELUARGA)
        expectations += [KK_FORMAT, WILAYAH_UNKNOWN, WILAYAH_OUT_OF_SCOPE, _date_rule("tanggal_pendataan")]
        expectations += family_codes
    elif kind is FileKind.PEMDA_ANGGOTA:
        expectations += _operation_rules(spec, codes.ALASAN_HAPUS_ANGGOTA)
        expectations += [NIK_FORMAT, KK_FORMAT, _date_rule("tanggal_lahir"), NIK_MISMATCH]
        expectations += [_code_rule(f) for f in codes.IDENTITY_CODED_FIELDS + codes.MEMBER_ATTRIBUTE_FIELDS]
    elif kind is FileKind.BPS_KELUARGA:
        expectations += [KK_FORMAT, WILAYAH_UNKNOWN, _date_rule("tanggal_survei"), *family_codes]
        expectations.append(_code_rule(codes.PENGELUARAN_FIELD))
    elif kind is FileKind.KEMENSOS_GROUNDCHECK:
        expectations += [
            KK_FORMAT,
            _date_rule("tanggal_kunjungan"),
            _in_set("hasil", list(codes.HASIL_GROUNDCHECK)),
        ]
        expectations.append(_in_set("layak", ["0", "1"]))
    elif kind is FileKind.ADUAN:
        expectations += [*_aduan_rules(), WILAYAH_UNKNOWN]
    elif kind is FileKind.DUKCAPIL_PENDUDUK:
        expectations += [NIK_FORMAT, KK_FORMAT, _date_rule("tanggal_lahir"), NIK_MISMATCH]
        expectations += [_code_rule(codes.CODED_FIELDS["jenis_kelamin"]), WILAYAH_UNKNOWN]
        expectations += [_in_set("status_hidup", list(codes.STATUS_HIDUP)), _date_rule("tanggal_meninggal")]
    expectations += _text_limits(spec)
    if kind is FileKind.KEMENSOS_GROUNDCHECK:  # after the contract's rules: their numbers stay
        expectations.append(CASE_ID_FORMAT)
    for index, expectation in enumerate(expectations):
        expectation["meta"]["rule"] = f"{kind.value}.{index:02d}"
    return {
        "name": suite_name(kind),
        "expectations": expectations,
        "meta": {"contract_version": 1, "file_kind": kind.value, "authored_by": "dtsen.validate.suites"},
    }


def write_suites(directory: Path = EXPECTATIONS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in FileKind:
        path = suite_path(kind, directory)
        path.write_text(json.dumps(build_suite(kind), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def load_suite(kind: FileKind, directory: Path = EXPECTATIONS_DIR) -> dict:
    return json.loads(suite_path(kind, directory).read_text(encoding="utf-8"))


if __name__ == "__main__":
    for p in write_suites():
        print(p)
