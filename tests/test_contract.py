"""The contract module must say exactly what ../shared/contracts/README.md says."""

from __future__ import annotations

import re

import pytest

from dtsen import contract
from dtsen.paths import PROJECT_ROOT

CONTRACT_DOC = PROJECT_ROOT.parent / "shared" / "contracts" / "README.md"


@pytest.fixture(scope="module")
def contract_text() -> str:
    if not CONTRACT_DOC.exists():
        pytest.skip("../shared/contracts/README.md is not beside this checkout")
    return CONTRACT_DOC.read_text(encoding="utf-8")


def test_reason_codes_match_the_contract_table(contract_text):
    section = contract_text.split("## 2. Rejection reason codes", 1)[1].split("## 3.", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| ")]
    documented = {code for cell in first_cells for code in re.findall(r"\b[A-Z][A-Z_]{4,}[A-Z]\b", cell)}
    assert documented == {r.code for r in contract.REASONS}


def test_every_reason_has_an_indonesian_message():
    for reason in contract.REASONS:
        assert reason.pesan and reason.pesan.endswith(".")


def test_file_columns_cover_the_documented_columns(contract_text):
    for spec in contract.FILE_SPECS.values():
        for column in spec.columns:
            assert f"`{column}`" in contract_text or column in contract_text, column
    for spec in contract.FILE_SPECS.values():
        assert set(spec.required) <= set(spec.columns)
        assert set(spec.required_for_tambah) <= set(spec.columns)


def test_staging_tables_have_exactly_the_contract_columns(db):
    for spec in contract.FILE_SPECS.values():
        cols = [
            r[0]
            for r in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'staging' "
                "AND table_name = %s ORDER BY ordinal_position",
                (spec.kind.value,),
            )
        ]
        data_cols = [c for c in cols if c not in ("round_seq", "submission_pk", "snapshot_pk", "line_no")]
        assert data_cols == list(spec.columns), spec.kind
