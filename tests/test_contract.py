"""The contract module must say exactly what the data contract says: ../shared/contracts/README.md
when it is beside the checkout, else the copy kept in docs/contract-v1.md (a lone clone)."""

from __future__ import annotations

import re

import pytest

from dtsen import contract
from dtsen.paths import PROJECT_ROOT

CONTRACT_DOC = PROJECT_ROOT.parent / "shared" / "contracts" / "README.md"
GOLDEN_COPY = PROJECT_ROOT / "docs" / "contract-v1.md"
EXTENSIONS = PROJECT_ROOT / "docs" / "contract-extensions.md"  # what the project adds (additive only)


@pytest.fixture(scope="module")
def contract_text() -> str:
    return (CONTRACT_DOC if CONTRACT_DOC.exists() else GOLDEN_COPY).read_text(encoding="utf-8")


def test_the_kept_copy_of_the_contract_is_the_contract():
    if not CONTRACT_DOC.exists():
        pytest.skip("../shared/contracts/README.md is not beside this checkout: the copy is all there is")
    assert GOLDEN_COPY.read_text(encoding="utf-8") == CONTRACT_DOC.read_text(encoding="utf-8")


def _codes_in_table(section: str) -> set[str]:
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| ")]
    return {code for cell in first_cells for code in re.findall(r"\b[A-Z][A-Z_]{4,}[A-Z]\b", cell)}


def test_reason_codes_match_the_contract_table_and_the_documented_extensions(contract_text):
    section = contract_text.split("## 2. Rejection reason codes", 1)[1].split("## 3.", 1)[0]
    extensions = (
        EXTENSIONS.read_text(encoding="utf-8").split("## Rejection reason codes", 1)[1].split("## ", 1)[0]
    )
    assert _codes_in_table(section) == {r.code for r in contract.REASONS if not r.extends_contract}
    assert _codes_in_table(extensions) == {r.code for r in contract.REASONS if r.extends_contract}


def test_every_reason_has_an_indonesian_message():
    for reason in contract.REASONS:
        assert reason.pesan and reason.pesan.endswith(".")


def test_file_columns_cover_the_documented_columns(contract_text):
    extensions = EXTENSIONS.read_text(encoding="utf-8")
    for spec in contract.FILE_SPECS.values():
        if spec.extends_contract:  # a file of this project's, documented with its columns
            section = extensions.split(f"`{spec.source}/", 1)[1].split("\n## ", 1)[0]
            assert all(f"`{column}`" in section for column in spec.columns), spec.kind
            continue
        for column in spec.columns:
            if column in spec.extensions:  # added by this project, documented as an extension
                assert f"`{column}`" in extensions and column not in contract_text, column
            else:
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


def _columns(db, relation: str) -> list[str]:
    return [d.name for d in db.execute(f"SELECT * FROM {relation} LIMIT 0").description]  # noqa: S608


def test_every_registry_publish_and_history_relation_carries_every_contract_attribute(db):
    """The applied migrations list the attributes by hand (history is never edited): this fails when
    one of those lists differs from the contract (a new attribute needs a migration extending them)."""
    from dtsen.domain.codes import FAMILY_ATTRIBUTES, MEMBER_ATTRIBUTES

    family = (
        "registry.family",
        "registry.current_family",
        "registry.family_as_of(1::smallint)",
        "publish.keluarga",
    )
    person = (
        "registry.person",
        "registry.current_person",
        "registry.person_as_of(1::smallint)",
        "publish.anggota",
    )
    for relation in family:
        assert set(FAMILY_ATTRIBUTES) <= set(_columns(db, relation)), relation
    for relation in person:
        assert set(MEMBER_ATTRIBUTES) <= set(_columns(db, relation)), relation
    for function, attributes in (
        ("registry.family_provenance(bigint)", FAMILY_ATTRIBUTES),
        ("registry.person_provenance(bigint)", MEMBER_ATTRIBUTES),
    ):
        body = db.execute("SELECT pg_get_functiondef(%s::regprocedure)", (function,)).fetchone()[0]
        assert [a for a in attributes if f"'{a}'" not in body] == [], function


def test_the_sql_files_render_every_attribute_from_the_contract():
    """merge, candidate and publication SQL take their attribute lists from the contract (templates)."""
    from dtsen import sqlfiles
    from dtsen.domain.codes import FAMILY_ATTRIBUTES, MEMBER_ATTRIBUTES
    from dtsen.paths import SQL_DIR

    for relative in ("merge/merge_round.sql", "publish/candidate.sql", "publish/files.sql"):
        raw = (SQL_DIR / relative).read_text()
        assert not [a for a in (*FAMILY_ATTRIBUTES, *MEMBER_ATTRIBUTES) if a in raw], relative  # none by hand
        rendered = sqlfiles.render(relative)
        assert all(a in rendered for a in (*FAMILY_ATTRIBUTES, *MEMBER_ATTRIBUTES)), relative
    raw = (SQL_DIR / "merge/person_scratch.sql").read_text()
    assert not [a for a in MEMBER_ATTRIBUTES if a in raw]
    for mode in ("whole", "empty", "share"):
        assert all(a in sqlfiles.render("merge/person_scratch.sql", mode=mode) for a in MEMBER_ATTRIBUTES)
