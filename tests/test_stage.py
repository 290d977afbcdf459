"""Staging files with COPY: odd-but-valid files are read, broken files are rejected whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg import sql

from dtsen.contract import KEMENSOS_GROUNDCHECK, PEMDA_ANGGOTA
from dtsen.ingest.stage import stage_file

HEADER = (
    "operasi,nik,no_kk,nama,jenis_kelamin,tanggal_lahir,hubungan_keluarga,status_perkawinan,"
    "pendidikan_tertinggi,status_sekolah,status_pekerjaan,disabilitas,penyakit_kronis,alasan_hapus"
)
ROW = "TAMBAH,3273014101900001,3273010101200001,Siti Aminah,2,1990-01-01,1,2,3,2,1,0,0,"


@pytest.fixture
def staged(db):
    """Stage a file into a scratch copy of staging.pemda_anggota; returns (result, rows)."""
    db.execute("CREATE TEMP TABLE t_anggota (LIKE staging.pemda_anggota)")

    def run(path: Path, spec=PEMDA_ANGGOTA, table="t_anggota"):
        result = stage_file(
            db, path, spec, target=sql.Identifier(table), key_columns={"round_seq": 1, "submission_pk": 7}
        )
        rows = db.execute(
            sql.SQL("SELECT * FROM {} ORDER BY line_no").format(sql.Identifier(table))
        ).fetchall()
        return result, rows

    return run


def write(tmp_path: Path, data: bytes, name: str = "anggota.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_plain_file_is_staged_with_line_numbers_from_2(staged, tmp_path):
    result, rows = staged(write(tmp_path, f"{HEADER}\n{ROW}\n{ROW}\n".encode()))
    assert result.code is None and result.rows_received == 2
    assert [r[2] for r in rows] == [2, 3]
    assert rows[0][6] == "Siti Aminah"
    assert rows[0][-1] is None  # empty alasan_hapus is NULL


def test_bom_header_case_spacing_and_extra_columns_are_tolerated(staged, tmp_path):
    header = " OPERASI , Nik," + HEADER.split(",", 2)[2] + ",catatan_desa"
    result, rows = staged(write(tmp_path, b"\xef\xbb\xbf" + f"{header}\r\n{ROW}, extra \r\n".encode()))
    assert result.code is None and result.rows_received == 1
    assert rows[0][3] == "TAMBAH" and rows[0][4] == "3273014101900001"
    assert any("catatan_desa" in w for w in result.warnings)


def test_quoted_newlines_keep_physical_line_numbers(staged, tmp_path):
    multi = ROW.replace("Siti Aminah", '"Siti\nAminah\nBinti"')
    result, rows = staged(write(tmp_path, f"{HEADER}\n{multi}\n{ROW}\n".encode()))
    assert result.code is None
    assert [r[2] for r in rows] == [2, 5]
    assert rows[0][6] == "Siti\nAminah\nBinti"


def test_values_are_trimmed_and_blank_is_null(staged, tmp_path):
    row = ROW.replace("Siti Aminah", "  Siti Aminah  ").replace(",1990-01-01,", ",   ,")
    _, rows = staged(write(tmp_path, f"{HEADER}\n{row}\n".encode()))
    assert rows[0][6] == "Siti Aminah" and rows[0][8] is None


def test_latin1_file_is_unreadable_and_nothing_is_staged(staged, tmp_path):
    data = f"{HEADER}\n{ROW}\n".replace("Siti Aminah", "José").encode("latin-1")
    result, rows = staged(write(tmp_path, data))
    assert result.code == "FILE_UNREADABLE" and "UTF-8" in result.detail
    assert rows == []


def test_latin1_in_the_header_is_unreadable(staged, tmp_path):
    result, _ = staged(write(tmp_path, ("nämä," + HEADER + "\n").encode("latin-1")))
    assert result.code == "FILE_UNREADABLE"


def test_empty_file_and_header_only_file(staged, tmp_path):
    result, _ = staged(write(tmp_path, b""))
    assert result.code == "FILE_MISSING_COLUMN" and "empty" in result.detail
    result, rows = staged(write(tmp_path, f"{HEADER}\n".encode(), "header_only.csv"))
    assert result.code is None and result.rows_received == 0 and rows == []


def test_missing_required_column_rejects_the_file(staged, tmp_path):
    result, rows = staged(write(tmp_path, b"operasi,no_kk,nama\nTAMBAH,3273010101200001,x\n"))
    assert result.code == "FILE_MISSING_COLUMN" and "nik" in result.detail and rows == []


def test_ragged_row_rejects_the_file_without_quoting_values(staged, tmp_path):
    result, rows = staged(write(tmp_path, f"{HEADER}\n{ROW}\nTAMBAH,3273014101900002,Rahasia\n".encode()))
    assert result.code == "FILE_UNREADABLE" and "line 3" in result.detail
    assert "3273014101900002" not in result.detail and "Rahasia" not in result.detail
    assert rows == []


def test_unterminated_quote_rejects_the_file(staged, tmp_path):
    result, _ = staged(write(tmp_path, f"{HEADER}\n{ROW.replace('Siti', chr(34) + 'Siti')}\n".encode()))
    assert result.code == "FILE_UNREADABLE"


def test_ten_megabytes_in_one_field_is_staged(staged, tmp_path):
    big = "A" * (10 * 1024 * 1024)
    result, rows = staged(write(tmp_path, f"{HEADER}\n{ROW.replace('Siti Aminah', big)}\n".encode()))
    assert result.code is None and len(rows[0][6]) == len(big)


def test_formula_and_sql_strings_are_stored_verbatim(staged, tmp_path):
    evil = "=cmd|' /C calc'!A0"
    sqlish = "Robert'); DROP TABLE registry.person;--"
    body = f"{HEADER}\n{ROW.replace('Siti Aminah', chr(34) + evil + chr(34))}\n{ROW.replace('Siti Aminah', sqlish)}\n"
    _, rows = staged(write(tmp_path, body.encode()))
    assert [r[6] for r in rows] == [evil, sqlish]


def test_other_file_kinds_use_their_own_columns(db, tmp_path):
    db.execute("CREATE TEMP TABLE t_gc (LIKE staging.kemensos_groundcheck)")
    path = write(
        tmp_path,
        b"no_kk,tanggal_kunjungan,hasil,layak,petugas_id\n3273010101200001,2026-05-01,DITEMUKAN,1,P-01\n",
    )
    result = stage_file(
        db,
        path,
        KEMENSOS_GROUNDCHECK,
        target=sql.Identifier("t_gc"),
        key_columns={"round_seq": 1, "submission_pk": 9},
    )
    assert result.code is None and any("catatan" in w for w in result.warnings)
    assert db.execute("SELECT hasil, catatan FROM t_gc").fetchone() == ("DITEMUKAN", None)


# -- nothing COPY is handed goes unaccounted (issue 10) -------------------------------------------


def test_a_line_holding_only_backslash_dot_rejects_the_file_instead_of_ending_it(staged, tmp_path):
    # PostgreSQL's CSV COPY reads a lone \. as end-of-data: without a check, rows 5-6 would vanish
    body = f"{HEADER}\n{ROW}\n{ROW}\n\\.\n{ROW}\n{ROW}\n"
    result, rows = staged(write(tmp_path, body.encode()))
    assert result.code == "FILE_UNREADABLE" and "line 4" in result.detail
    assert "Baris 4" in result.pesan and "\\." in result.pesan
    assert rows == []
    assert result.rows_received == 5  # every data line of the file is accounted as received (and refused)


def test_quoted_newline_and_no_final_newline_keep_the_real_line_numbers(staged, tmp_path):
    multi = ROW.replace("Siti Aminah", '"Siti\nAminah"')
    bad = ROW.replace(",2,1990-01-01,", ",7,1990-01-01,")
    result, rows = staged(write(tmp_path, f"{HEADER}\n{multi}\n{ROW}\n{bad}".encode()))
    assert result.code is None and result.rows_received == 3
    assert [r[2] for r in rows] == [2, 4, 5]


def test_blank_lines_are_skipped_and_counted_not_fatal(staged, tmp_path):
    body = f"{HEADER}\n{ROW}\n\n   \n,,,,\n{ROW}\n\n"
    result, rows = staged(write(tmp_path, body.encode()))
    assert result.code is None and result.rows_received == 2
    assert [r[2] for r in rows] == [2, 6]
    assert any("4 baris kosong dilewati (baris 3, 4, 5, 7)" in w for w in result.warnings), result.warnings


def test_a_blank_line_inside_a_quoted_field_is_data(staged, tmp_path):
    multi = ROW.replace("Siti Aminah", '"Siti\n\nAminah"')
    result, rows = staged(write(tmp_path, f"{HEADER}\n{multi}\n{ROW}\n".encode()))
    assert result.code is None and result.rows_received == 2
    assert rows[0][6] == "Siti\n\nAminah" and [r[2] for r in rows] == [2, 5]


def test_a_bad_byte_is_reported_on_its_own_line_not_in_the_header(staged, tmp_path):
    data = f"{HEADER}\n{ROW}\n{ROW}\n".encode()
    data = data.replace(b"Siti Aminah", "Jos\u00e9".encode("latin-1"), 2).replace(
        "Jos\u00e9".encode("latin-1"), b"Siti Aminah", 1
    )
    result, _ = staged(write(tmp_path, data))
    assert result.code == "FILE_UNREADABLE" and "line 3" in result.detail and "header" not in result.detail
    assert "Baris 3" in result.pesan


def test_an_unbalanced_quote_is_reported_where_it_opens(staged, tmp_path):
    lines = [ROW] * 20
    lines[5] = ROW.replace("Siti Aminah", '"Siti Aminah')  # line 7 of the file
    lines[10] = ROW.replace("Siti Aminah", '"Siti, Aminah"')  # a well-formed quoted field later on
    result, _ = staged(write(tmp_path, ("\n".join([HEADER, *lines]) + "\n").encode()))
    assert result.code == "FILE_UNREADABLE" and "line 7" in result.detail, result.detail
    assert "baris 7" in result.pesan


def test_a_ragged_row_in_a_multi_line_record_names_the_line_the_record_starts_on(staged, tmp_path):
    ragged = ROW.replace("Siti Aminah", '"Siti\nAminah"') + ",extra"
    result, _ = staged(write(tmp_path, f"{HEADER}\n{ROW}\n{ragged}\n{ROW}\n".encode()))
    assert result.code == "FILE_UNREADABLE" and "line 3" in result.detail and "14 columns" in result.detail


def test_a_missing_column_is_named_for_the_region(staged, tmp_path):
    result, _ = staged(write(tmp_path, b"operasi,no_kk,nama\nTAMBAH,3273010101200001,x\n"))
    assert result.code == "FILE_MISSING_COLUMN"
    assert "nik" in result.pesan and "kolom wajib" in result.pesan.lower()
    assert result.rows_received == 1


def test_a_missing_column_needed_for_tambah_is_not_called_optional(db, tmp_path):
    from dtsen.contract import PEMDA_KELUARGA

    db.execute("CREATE TEMP TABLE t_kel (LIKE staging.pemda_keluarga)")
    path = write(
        tmp_path,
        b"operasi,no_kk,kode_wilayah,tanggal_pendataan\nUBAH,3273010101200001,3273011001,2026-05-01\n",
        "keluarga.csv",
    )
    result = stage_file(
        db,
        path,
        PEMDA_KELUARGA,
        target=sql.Identifier("t_kel"),
        key_columns={"round_seq": 1, "submission_pk": 3},
    )
    assert result.code is None
    tambah = [w for w in result.warnings if "wajib untuk operasi TAMBAH" in w]
    assert tambah and "alamat" in tambah[0]
    assert not any("opsional" in w and "alamat" in w for w in result.warnings)
