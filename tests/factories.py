"""Small hand-made landing zones for tests that need exact control over bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROUND = "2026-Q2"
KELUARGA = b"operasi,no_kk,kode_wilayah,tanggal_pendataan\nUBAH,3273010101200001,3273011001,2026-05-01\n"
ANGGOTA = b"operasi,nik,no_kk\nUBAH,3273014101900001,3273010101200001\n"


def make_submission(
    root: Path,
    sub_id: str = "3273-2026Q2-01",
    *,
    folder: str = "pemda",
    data_files: dict[str, bytes] | None = None,
    folder_round: str = ROUND,
    **overrides,
) -> Path:
    """Write a pemda submission folder whose manifest matches its files, unless overridden."""
    path = root / folder_round / folder / sub_id
    path.mkdir(parents=True)
    files = data_files if data_files is not None else {"keluarga.csv": KELUARGA, "anggota.csv": ANGGOTA}
    for name, data in files.items():
        (path / name).write_bytes(data)
    manifest = {
        "source": folder,
        "submission_id": sub_id,
        "round_id": folder_round,
        "kode_wilayah": "3273" if folder == "pemda" else "",
        "submitted_at": "2026-05-14T09:30:00+07:00",
        "submitted_by": "dinsos.kotabandung",
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    manifest.update(overrides)
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def make_dukcapil(root: Path, snapshot_date: str, body: bytes) -> Path:
    path = root / "reference" / "dukcapil" / snapshot_date
    path.mkdir(parents=True)
    (path / "penduduk.csv").write_bytes(body)
    return path / "penduduk.csv"
