"""Code lists and plausible ranges from ../shared/domain.md (contract v1).

One place for every coded field, so the generator, the validation suites and the ranking model all
read the same lists.
"""

from __future__ import annotations

from dataclasses import dataclass

OPERASI = ("TAMBAH", "UBAH", "HAPUS")

ALASAN_HAPUS_KELUARGA = ("PINDAH", "SEMUA_MENINGGAL", "DUPLIKAT", "TIDAK_DITEMUKAN", "MAMPU")
ALASAN_HAPUS_ANGGOTA = ("MENINGGAL", "PINDAH", "DUPLIKAT", "SALAH_DATA")

HASIL_GROUNDCHECK = ("DITEMUKAN", "TIDAK_DITEMUKAN", "PINDAH", "MENINGGAL")
STATUS_HIDUP = ("HIDUP", "MENINGGAL")

# Household objections (sanggah) and proposals (usul), aduan/<submission_id>/aduan.csv (an extension of
# the contract, docs/contract-extensions.md): the type, and each type's reasons.
JENIS_ADUAN = ("SANGGAH", "USUL")
ALASAN_ADUAN: dict[str, tuple[str, ...]] = {
    # "this family should not receive program P"
    "SANGGAH": ("MAMPU", "TIDAK_DIKENAL", "PINDAH", "MENINGGAL", "GANDA"),
    # "this family should be registered, or ranked again"
    "USUL": ("BELUM_TERDAFTAR", "KONDISI_MEMBURUK", "DATA_TIDAK_SESUAI"),
}

JENIS_KELAMIN = {1: "laki-laki", 2: "perempuan"}
HUBUNGAN_KELUARGA = {
    1: "kepala keluarga",
    2: "istri/suami",
    3: "anak",
    4: "menantu",
    5: "cucu",
    6: "orang tua/mertua",
    7: "famili lain",
    8: "lainnya",
}
KEPALA_KELUARGA = 1
STATUS_PERKAWINAN = {1: "belum kawin", 2: "kawin", 3: "cerai hidup", 4: "cerai mati"}
PENDIDIKAN_TERTINGGI = {
    0: "tidak/belum sekolah",
    1: "SD/sederajat",
    2: "SMP",
    3: "SMA/SMK",
    4: "D1-D3",
    5: "D4/S1",
    6: "S2/S3",
}
STATUS_SEKOLAH = {0: "tidak/belum pernah sekolah", 1: "masih sekolah", 2: "tidak bersekolah lagi"}
STATUS_PEKERJAAN = {
    0: "tidak bekerja",
    1: "berusaha sendiri",
    2: "buruh/karyawan swasta",
    3: "pekerja bebas",
    4: "pekerja keluarga tak dibayar",
    5: "ASN/TNI/Polri/pejabat negara",
    6: "pegawai BUMN/BUMD",
}
BOOLEAN = {0: "tidak", 1: "ya"}
STATUS_KEPEMILIKAN_RUMAH = {1: "milik sendiri", 2: "kontrak/sewa", 3: "bebas sewa", 4: "dinas", 5: "lainnya"}
JENIS_LANTAI = {
    1: "marmer/granit",
    2: "keramik",
    3: "parket/vinil",
    4: "ubin/tegel",
    5: "kayu/papan",
    6: "semen/bata merah",
    7: "bambu",
    8: "tanah",
    9: "lainnya",
}
JENIS_DINDING = {
    1: "tembok",
    2: "plesteran anyaman bambu/kawat",
    3: "kayu/papan",
    4: "anyaman bambu",
    5: "batang kayu",
    6: "bambu",
    7: "lainnya",
}
JENIS_ATAP = {
    1: "beton",
    2: "genteng",
    3: "seng",
    4: "asbes",
    5: "kayu/sirap",
    6: "bambu",
    7: "jerami/ijuk/rumbia",
    8: "lainnya",
}
SUMBER_AIR_MINUM = {
    1: "air kemasan",
    2: "air isi ulang",
    3: "leding",
    4: "sumur bor/pompa",
    5: "sumur terlindung",
    6: "sumur tak terlindung",
    7: "mata air terlindung",
    8: "mata air tak terlindung",
    9: "air permukaan",
    10: "air hujan",
    11: "lainnya",
}
SUMBER_PENERANGAN = {
    1: "listrik PLN dengan meteran",
    2: "listrik PLN tanpa meteran",
    3: "listrik non-PLN",
    4: "bukan listrik",
}
# 0 = none or non-PLN; the listed steps; and any integer 6600-200000 for larger connections.
DAYA_LISTRIK_STEPS = (0, 450, 900, 1300, 2200, 3500, 5500)
DAYA_LISTRIK_LARGE = (6600, 200_000)
BAHAN_BAKAR_MEMASAK = {
    1: "listrik",
    2: "gas elpiji >3 kg",
    3: "gas elpiji 3 kg",
    4: "gas kota/biogas",
    5: "minyak tanah",
    6: "briket/arang",
    7: "kayu bakar",
    8: "tidak memasak",
}
FASILITAS_BAB = {
    1: "sendiri dengan leher angsa",
    2: "sendiri tanpa leher angsa",
    3: "bersama/umum",
    4: "tidak ada",
}
LUAS_LANTAI_M2 = (1, 2000)
PENGELUARAN_PER_KAPITA = (50_000, 100_000_000)
NAMA_MAX_LEN = 100


@dataclass(frozen=True)
class CodedField:
    """A field whose value must be one of `codes` or fall in the closed range `value_range`."""

    name: str
    codes: tuple[int, ...] = ()
    value_range: tuple[int, int] | None = None

    @property
    def sql_type(self) -> str:
        """The registry column type: smallint unless a value can exceed it."""
        largest = max([*self.codes, *(self.value_range or ())], default=0)
        return "smallint" if largest <= 32767 else "int"

    def allows(self, value: int) -> bool:
        if value in self.codes:
            return True
        if self.value_range is not None:
            lo, hi = self.value_range
            return lo <= value <= hi
        return False


def _coded(name: str, mapping: dict[int, str]) -> CodedField:
    return CodedField(name, tuple(mapping))


HOUSING_FIELDS: tuple[CodedField, ...] = (
    _coded("status_kepemilikan_rumah", STATUS_KEPEMILIKAN_RUMAH),
    CodedField("luas_lantai_m2", value_range=LUAS_LANTAI_M2),
    _coded("jenis_lantai", JENIS_LANTAI),
    _coded("jenis_dinding", JENIS_DINDING),
    _coded("jenis_atap", JENIS_ATAP),
    _coded("sumber_air_minum", SUMBER_AIR_MINUM),
    _coded("sumber_penerangan", SUMBER_PENERANGAN),
    CodedField("daya_listrik_va", DAYA_LISTRIK_STEPS, DAYA_LISTRIK_LARGE),
    _coded("bahan_bakar_memasak", BAHAN_BAKAR_MEMASAK),
    _coded("fasilitas_bab", FASILITAS_BAB),
)
ASSET_FIELDS: tuple[CodedField, ...] = tuple(
    _coded(name, BOOLEAN)
    for name in (
        "punya_kulkas",
        "punya_ac",
        "punya_sepeda_motor",
        "punya_mobil",
        "punya_emas",
        "punya_lahan",
        "punya_ternak",
    )
)
FAMILY_ATTRIBUTE_FIELDS: tuple[CodedField, ...] = HOUSING_FIELDS + ASSET_FIELDS

MEMBER_ATTRIBUTE_FIELDS: tuple[CodedField, ...] = (
    _coded("status_perkawinan", STATUS_PERKAWINAN),
    _coded("pendidikan_tertinggi", PENDIDIKAN_TERTINGGI),
    _coded("status_sekolah", STATUS_SEKOLAH),
    _coded("status_pekerjaan", STATUS_PEKERJAAN),
    _coded("disabilitas", BOOLEAN),
    _coded("penyakit_kronis", BOOLEAN),
)
IDENTITY_CODED_FIELDS: tuple[CodedField, ...] = (
    _coded("jenis_kelamin", JENIS_KELAMIN),
    _coded("hubungan_keluarga", HUBUNGAN_KELUARGA),
)
PENGELUARAN_FIELD = CodedField("pengeluaran_per_kapita", value_range=PENGELUARAN_PER_KAPITA)

CODED_FIELDS: dict[str, CodedField] = {
    f.name: f for f in FAMILY_ATTRIBUTE_FIELDS + MEMBER_ATTRIBUTE_FIELDS + IDENTITY_CODED_FIELDS
} | {PENGELUARAN_FIELD.name: PENGELUARAN_FIELD, "layak": _coded("layak", BOOLEAN)}

FAMILY_ATTRIBUTES: tuple[str, ...] = tuple(f.name for f in FAMILY_ATTRIBUTE_FIELDS)
MEMBER_ATTRIBUTES: tuple[str, ...] = tuple(f.name for f in MEMBER_ATTRIBUTE_FIELDS)
