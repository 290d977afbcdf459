"""The data contract (../shared/contracts/README.md, version 1) as data.

Landing-zone layout, file kinds and their columns, and the rejection reason codes. The generator
writes files from these lists and the validation reads them, so both always agree with the contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from dtsen.domain.codes import FAMILY_ATTRIBUTES, MEMBER_ATTRIBUTES

CONTRACT_VERSION = 1

ROUND_ID_RE = re.compile(r"^\d{4}-Q[1-4]$")
SUBMISSION_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

SOURCES = ("pemda", "bps", "kemensos", "aduan")  # aduan: an extension (docs/contract-extensions.md)
DUKCAPIL_DIR = ("reference", "dukcapil")
DUKCAPIL_FILE = "penduduk.csv"
MANIFEST_FILE = "manifest.json"


class FileKind(StrEnum):
    PEMDA_KELUARGA = "pemda_keluarga"
    PEMDA_ANGGOTA = "pemda_anggota"
    BPS_KELUARGA = "bps_keluarga"
    KEMENSOS_GROUNDCHECK = "kemensos_groundcheck"
    ADUAN = "aduan"
    DUKCAPIL_PENDUDUK = "dukcapil_penduduk"


@dataclass(frozen=True)
class FileSpec:
    kind: FileKind
    source: str
    file_name: str
    columns: tuple[str, ...]
    required: tuple[str, ...]  # must be present in the header and non-empty on every row
    required_for_tambah: tuple[str, ...] = ()
    required_for_hapus: tuple[str, ...] = ()
    key: str = "no_kk"  # the record key reported (masked) in feedback
    # optional columns this project adds (docs/contract-extensions.md): a file without them is as the
    # contract has it, so their absence is not warned about
    extensions: tuple[str, ...] = ()
    extends_contract: bool = False  # the whole file is this project's (docs/contract-extensions.md)


PEMDA_KELUARGA = FileSpec(
    kind=FileKind.PEMDA_KELUARGA,
    source="pemda",
    file_name="keluarga.csv",
    columns=(
        "operasi",
        "no_kk",
        "kode_wilayah",
        "alamat",
        "tanggal_pendataan",
        *FAMILY_ATTRIBUTES,
        "alasan_hapus",
    ),
    required=("operasi", "no_kk", "kode_wilayah", "tanggal_pendataan"),
    required_for_tambah=("alamat", *FAMILY_ATTRIBUTES),
    required_for_hapus=("alasan_hapus",),
)
PEMDA_ANGGOTA = FileSpec(
    kind=FileKind.PEMDA_ANGGOTA,
    source="pemda",
    file_name="anggota.csv",
    columns=(
        "operasi",
        "nik",
        "no_kk",
        "nama",
        "jenis_kelamin",
        "tanggal_lahir",
        "hubungan_keluarga",
        *MEMBER_ATTRIBUTES,
        "alasan_hapus",
    ),
    required=("operasi", "nik", "no_kk"),
    required_for_tambah=("nama", "jenis_kelamin", "tanggal_lahir", "hubungan_keluarga", *MEMBER_ATTRIBUTES),
    required_for_hapus=("alasan_hapus",),
    key="nik",
)
BPS_KELUARGA = FileSpec(
    kind=FileKind.BPS_KELUARGA,
    source="bps",
    file_name="keluarga.csv",
    columns=("no_kk", "kode_wilayah", "tanggal_survei", *FAMILY_ATTRIBUTES, "pengeluaran_per_kapita"),
    required=("no_kk", "kode_wilayah", "tanggal_survei"),
)
KEMENSOS_GROUNDCHECK = FileSpec(
    kind=FileKind.KEMENSOS_GROUNDCHECK,
    source="kemensos",
    file_name="groundcheck.csv",
    columns=("no_kk", "tanggal_kunjungan", "hasil", "layak", "petugas_id", "catatan", "id_kasus"),
    required=("no_kk", "tanggal_kunjungan", "hasil", "layak", "petugas_id"),
    extensions=("id_kasus",),  # the verification case the visit answers (issue 26)
)
# Households' objections and proposals from the channel that collects them (issue 26; an extension of the
# contract): the subject family by no_kk and/or a member's nik, never the reporter (pelapor_ref is the
# channel's opaque reference, for telling the reporter the outcome).
ADUAN = FileSpec(
    kind=FileKind.ADUAN,
    source="aduan",
    file_name="aduan.csv",
    columns=(
        "jenis",
        "no_kk",
        "nik",
        "kode_wilayah",
        "program",
        "alasan",
        "keterangan",
        "tanggal_aduan",
        "pelapor_ref",
    ),
    required=("jenis", "alasan", "tanggal_aduan", "pelapor_ref"),
    extends_contract=True,
)
DUKCAPIL_PENDUDUK = FileSpec(
    kind=FileKind.DUKCAPIL_PENDUDUK,
    source="dukcapil",
    file_name=DUKCAPIL_FILE,
    columns=(
        "nik",
        "no_kk",
        "nama",
        "jenis_kelamin",
        "tanggal_lahir",
        "kode_wilayah",
        "status_hidup",
        "tanggal_meninggal",
    ),
    required=("nik", "no_kk", "nama", "jenis_kelamin", "tanggal_lahir", "kode_wilayah", "status_hidup"),
    key="nik",
)

# Longest value accepted in a free-text column (longer: CODE_OUT_OF_DOMAIN). `nama` 1-100 is the
# contract's; the others are this project's (extension), so a 10 MB address never reaches the registry.
TEXT_MAX_CHARS: dict[str, int] = {
    "nama": 100,
    "alamat": 500,
    "petugas_id": 64,
    "catatan": 1000,
    "keterangan": 1000,
    "pelapor_ref": 64,
}

FILE_SPECS: dict[FileKind, FileSpec] = {
    s.kind: s
    for s in (PEMDA_KELUARGA, PEMDA_ANGGOTA, BPS_KELUARGA, KEMENSOS_GROUNDCHECK, ADUAN, DUKCAPIL_PENDUDUK)
}
# Files each source's submission folder holds, in the order they are processed.
SUBMISSION_FILES: dict[str, tuple[FileSpec, ...]] = {
    "pemda": (PEMDA_KELUARGA, PEMDA_ANGGOTA),
    "bps": (BPS_KELUARGA,),
    "kemensos": (KEMENSOS_GROUNDCHECK,),
    "aduan": (ADUAN,),
}


class Level(StrEnum):
    SUBMISSION = "submission"
    FILE = "file"
    ROW = "row"


@dataclass(frozen=True)
class Reason:
    code: str
    level: Level
    meaning: str  # English, for operators
    pesan: str  # Indonesian, for the region: what is wrong and what to do
    extends_contract: bool = False  # added by this project (docs/contract-extensions.md), not in contract v1


REASONS: tuple[Reason, ...] = (
    Reason(
        "MANIFEST_INVALID",
        Level.SUBMISSION,
        "manifest missing, unparsable or inconsistent with its folder",
        "manifest.json tidak ada, tidak dapat dibaca, atau isinya tidak sesuai dengan folder kiriman. Perbaiki manifest lalu kirim ulang.",
    ),
    Reason(
        "CHECKSUM_MISMATCH",
        Level.SUBMISSION,
        "a file's sha256 differs from the manifest",
        "Checksum berkas tidak sama dengan yang tercantum di manifest.json. Berkas mungkin rusak atau berubah setelah manifest dibuat; hitung ulang dan kirim ulang.",
    ),
    Reason(
        "DUPLICATE_SUBMISSION",
        Level.SUBMISSION,
        "byte-identical files were already processed",
        "Berkas kiriman ini sama persis dengan kiriman yang sudah diproses sebelumnya, sehingga tidak diproses lagi.",
    ),
    Reason(
        "FILE_UNREADABLE",
        Level.FILE,
        "file is not valid UTF-8 CSV",
        "Berkas tidak dapat dibaca sebagai CSV UTF-8. Simpan ulang sebagai CSV (UTF-8, dipisah koma) lalu kirim ulang.",
    ),
    Reason(
        "FILE_MISSING_COLUMN",
        Level.FILE,
        "header lacks a required column",
        "Baris judul (header) berkas tidak memuat kolom wajib. Tambahkan kolom yang disebutkan lalu kirim ulang.",
    ),
    Reason(
        "SUBMISSION_QUALITY_GATE",
        Level.SUBMISSION,
        "too many rows failed; nothing from the submission is merged",
        "Terlalu banyak baris yang ditolak sehingga seluruh kiriman tidak diproses. Perbaiki baris yang ditolak lalu kirim ulang seluruh kiriman.",
    ),
    Reason(
        "REQUIRED_MISSING", Level.ROW, "a required field is empty", "Kolom wajib kosong. Isi kolom tersebut."
    ),
    Reason(
        "NIK_FORMAT",
        Level.ROW,
        "NIK not 16 digits, serial 0000 or impossible embedded date",
        "NIK tidak valid (harus 16 angka dengan tanggal lahir yang benar dan nomor urut bukan 0000). Periksa NIK pada KTP/KK.",
    ),
    Reason(
        "NIK_MISMATCH",
        Level.ROW,
        "NIK's embedded birth date or sex disagrees with the row",
        "Tanggal lahir atau jenis kelamin tidak cocok dengan NIK (digit 7-12). Periksa NIK, tanggal lahir dan jenis kelamin pada KTP/KK.",
    ),
    Reason(
        "KK_FORMAT",
        Level.ROW,
        "no_kk not 16 digits or impossible",
        "Nomor KK tidak valid (harus 16 angka dengan tanggal terbit yang benar). Periksa nomor pada Kartu Keluarga.",
    ),
    Reason(
        "WILAYAH_UNKNOWN",
        Level.ROW,
        "kode_wilayah is not a known village code",
        "Kode wilayah tidak dikenal. Gunakan kode desa/kelurahan 10 digit sesuai Kepmendagri 300.2.2-2138/2025.",
    ),
    Reason(
        "WILAYAH_OUT_OF_SCOPE",
        Level.ROW,
        "village outside the submitting regency",
        "Desa/kelurahan ini berada di luar kabupaten/kota pengirim. Data keluarga di luar wilayah Anda dikirim oleh daerah tempat keluarga tinggal.",
    ),
    Reason(
        "CODE_OUT_OF_DOMAIN",
        Level.ROW,
        "coded field outside its code list or plausible range",
        "Nilai kolom di luar daftar kode atau rentang yang diperbolehkan. Gunakan kode sesuai petunjuk pengisian.",
    ),
    Reason(
        "DATE_INVALID",
        Level.ROW,
        "unparsable date, in the future, or before 1900",
        "Tanggal tidak valid (format harus TTTT-BB-HH, tidak boleh di masa depan atau sebelum tahun 1900).",
    ),
    Reason(
        "DUPLICATE_IN_FILE",
        Level.ROW,
        "the same NIK / no_kk more than once in one file; all copies rejected",
        "NIK atau nomor KK yang sama muncul lebih dari sekali dalam berkas ini; semua salinannya ditolak. Kirim satu baris saja per orang/keluarga.",
    ),
    Reason(
        "FAMILY_UNKNOWN",
        Level.ROW,
        "member's no_kk is neither in this submission nor in the registry",
        "Nomor KK anggota ini tidak ada di kiriman ini maupun di DTSEN. Tambahkan data keluarganya (keluarga.csv) atau perbaiki nomor KK.",
    ),
    Reason(
        "FAMILY_STRUCTURE",
        Level.ROW,
        "after the submission a family has no head or more than one head",
        "Setelah perubahan ini keluarga tidak memiliki kepala keluarga atau memiliki lebih dari satu. Pastikan tepat satu anggota berhubungan_keluarga = 1.",
    ),
    Reason(
        "NIK_NOT_IN_DUKCAPIL",
        Level.ROW,
        "NIK absent from the civil-registry reference",
        "NIK tidak ditemukan di data kependudukan Dukcapil. Periksa NIK pada KTP/KK atau minta warga memperbarui data di Disdukcapil.",
    ),
    Reason(
        "NIK_DECEASED",
        Level.ROW,
        "Dukcapil records the person as deceased",
        "Menurut Dukcapil orang ini sudah meninggal. Jika benar, kirim baris HAPUS dengan alasan MENINGGAL; jika keliru, warga perlu memperbaiki data di Disdukcapil.",
    ),
    Reason(
        "NIK_DUKCAPIL_CONFLICT",
        Level.ROW,
        "the Dukcapil extract lists this NIK more than once with different content (an extract defect); "
        "the row is held, not the sender's error",
        "Data Dukcapil untuk NIK ini sedang bermasalah: ekstrak Dukcapil mencantumkannya lebih dari sekali "
        "dengan isi berbeda. Ini bukan kesalahan daerah dan NIK tidak perlu diperbaiki; baris ini ditahan dan "
        "dapat dikirim ulang pada putaran berikutnya setelah Dukcapil memperbaiki datanya.",
        extends_contract=True,
    ),
    Reason(
        "CASE_UNKNOWN",
        Level.ROW,
        "a field result names a verification case (id_kasus) that is not an open case of its family: "
        "unknown, another family's, or already resolved or expired",
        "nomor kasus ini tidak dikenal untuk keluarga ini, atau kasusnya sudah selesai atau kedaluwarsa. "
        "Periksa nomor kasus pada daftar kerja lapangan; hasil kunjungan tanpa kasus boleh dikirim tanpa id_kasus.",
        extends_contract=True,
    ),
    Reason(
        "RECORD_NOT_FOUND",
        Level.ROW,
        "UBAH/HAPUS for a NIK or KK not in the registry",
        "Data yang akan diubah atau dihapus tidak ada di DTSEN. Gunakan operasi TAMBAH untuk data baru, atau periksa NIK/nomor KK.",
    ),
    Reason(
        "RECORD_EXISTS",
        Level.ROW,
        "TAMBAH for a NIK or KK already in the registry",
        "Data ini sudah ada di DTSEN. Gunakan operasi UBAH untuk memperbarui data yang sudah ada.",
    ),
    Reason(
        "CONFLICT_LOST",
        Level.ROW,
        "overridden by a higher-priority or newer source in the same round",
        "Baris ini benar, tetapi pada putaran yang sama ada data lain untuk orang/keluarga yang sama dari sumber yang lebih diutamakan atau lebih baru, dan data itulah yang dipakai.",
    ),
)
REASON_BY_CODE: dict[str, Reason] = {r.code: r for r in REASONS}
ROW_LEVEL_CODES: tuple[str, ...] = tuple(r.code for r in REASONS if r.level is Level.ROW)
# the row-level codes of contract v1 itself: what a world written against the contract can carry (an
# extension such as NIK_DUKCAPIL_CONFLICT answers a defect of the civil-registry extract, not of a row)
CONTRACT_ROW_LEVEL_CODES: tuple[str, ...] = tuple(
    r.code for r in REASONS if r.level is Level.ROW and not r.extends_contract
)
