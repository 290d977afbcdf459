"""Explain one person's decisions in a version: desil, score and its main terms, sources, program rules.

Everything is recomputed from the version's frozen rows with the same SQL the version was built
with (the model's terms, the eligibility context, the programs' predicates), so the explanation is
the decision, not a paraphrase of it. The NIK is shown masked; names are not shown.
"""

from __future__ import annotations

import math

import psycopg

from dtsen.domain.codes import FAMILY_ATTRIBUTES, MEMBER_ATTRIBUTES
from dtsen.domain.identity import mask
from dtsen.errors import DataError
from dtsen.programs import ProgramSet
from dtsen.publish.candidate import eligibility_context_sql, version_members
from dtsen.rank.model import FEATURES, RankingModel, family_features_query

HUBUNGAN = {
    1: "head",
    2: "spouse",
    3: "child",
    4: "child-in-law",
    5: "grandchild",
    6: "parent",
    7: "relative",
    8: "other",
}

PROVENANCE_SQL = """
WITH base AS (
    SELECT 'P'::char AS entity, nik AS key, created_round, created_submission FROM registry.person WHERE nik = %(nik)s
    UNION ALL
    SELECT 'F', no_kk, created_round, created_submission FROM registry.family WHERE no_kk = %(no_kk)s
), fields AS (
    SELECT 'P'::char AS entity, unnest(%(person_fields)s::text[]) AS field
    UNION ALL SELECT 'F', unnest(%(family_fields)s::text[])
)
SELECT f.entity, f.field, r.round_id, coalesce(c.source, s.source, 'system') AS source,
       coalesce(cs.submission_id, s.submission_id) AS submission_id
FROM fields f
JOIN base b ON b.entity = f.entity
LEFT JOIN LATERAL (
    SELECT fc.round_seq, fc.source, fc.submission_pk FROM registry.field_change fc
    WHERE fc.entity = f.entity AND fc.entity_key = b.key AND fc.field = f.field AND fc.round_seq <= %(round_seq)s
    ORDER BY fc.round_seq DESC, fc.changed_at DESC LIMIT 1
) c ON true
LEFT JOIN ingest.submission cs ON cs.submission_pk = c.submission_pk
LEFT JOIN ingest.submission s ON s.submission_pk = b.created_submission AND c.round_seq IS NULL
JOIN ingest.round r ON r.round_seq = coalesce(c.round_seq, b.created_round)
ORDER BY f.entity DESC, f.field
"""


class ExplainError(DataError):
    pass


def _term_contributions(conn, model: RankingModel, version: int, no_kk: int, reference_date) -> list[tuple]:
    """(feature, value, contribution, relative to the average family) for each model term."""
    columns = []
    for i, term in enumerate(model.terms):
        columns.append(f"({term.sql()})::float8 AS t{i}")
        columns.append(f"({FEATURES[term.feature]})::text AS v{i}")
    family = f"(SELECT * FROM publish.keluarga WHERE version = {int(version)} AND no_kk = {int(no_kk)})"  # noqa: S608
    query = family_features_query(
        ", ".join(columns), family, version_members(version, no_kk), model.member_features_used()
    )
    row = conn.execute(query, {"reference_date": reference_date}).fetchone()
    out = []
    for i, term in enumerate(model.terms):
        contribution = row[2 * i]
        out.append((term.feature, row[2 * i + 1], contribution, contribution - term.mean_contribution))
    return sorted(out, key=lambda t: -abs(t[3]))


def explain(
    conn: psycopg.Connection, nik: int, version: int | None, model: RankingModel, programs: ProgramSet
) -> list[str]:
    if version is None:
        found = conn.execute("SELECT version FROM publish.current_version").fetchone()
        if not found:
            raise ExplainError("no version is published yet; pass --version for a candidate")
        version = found[0]
    meta = conn.execute(
        "SELECT v.status, v.round_seq, r.round_id, v.reference_date, r.dukcapil_snapshot_pk, v.ranking_model "
        "FROM publish.version v JOIN ingest.round r ON r.round_seq = v.round_seq WHERE v.version = %s",
        (version,),
    ).fetchone()
    if not meta:
        raise ExplainError(f"version {version} does not exist")
    status, round_seq, round_id, reference_date, snapshot_pk, model_ref = meta
    lines = [
        f"person {mask(str(nik))} in version {version} ({status}, round {round_id}, ages on {reference_date})"
    ]
    person = conn.execute(
        "SELECT no_kk, hubungan_keluarga FROM publish.anggota WHERE version = %s AND nik = %s", (version, nik)
    ).fetchone()
    if not person:
        closed = conn.execute(
            "SELECT is_open, closed_reason, closed_round FROM registry.person WHERE nik = %s", (nik,)
        ).fetchone()
        why = (
            "not in the registry"
            if not closed
            else (
                f"closed in the registry ({closed[1]}, round #{closed[2]})"
                if not closed[0]
                else "not yet in the registry then"
            )
        )
        return lines + [f"  not in this version: {why}; a recipient of no program"]
    no_kk, hubungan = person
    if model_ref.get("sha256") != model.sha256:
        lines.append(
            f"  note: this version was ranked with model {model_ref.get('name')} v{model_ref.get('version')} "
            f"({model_ref.get('sha256', '')[:12]}), not the configured one: term contributions below may differ"
        )
    fam = conn.execute(
        "SELECT desil, skor_kesejahteraan, skor_sumber, jumlah_anggota, kode_wilayah, groundcheck_hasil, "
        "groundcheck_tanggal FROM publish.keluarga WHERE version = %s AND no_kk = %s",
        (version, no_kk),
    ).fetchone()
    desil, skor, sumber, size, kode, gc_result, gc_date = fam
    lines.append(
        f"  family {mask(str(no_kk))} in {kode}: {size} members, this person is the {HUBUNGAN.get(hubungan, hubungan)}"
    )
    lines.append(
        f"  desil {desil}; score {skor:.3f} (log monthly per-capita expenditure, ~Rp {round(math.exp(skor)):,})"
    )
    if sumber == "BPS":
        lines.append(
            "  the score is BPS's measured per-capita expenditure (surveyed within the last 12 months)"
        )
    else:
        lines.append(
            f"  the score is predicted by model {model_ref.get('name')} v{model_ref.get('version')}; main terms"
        )
        lines.append("  (contribution relative to an average family, in log points):")
        for feature, value, _, relative in _term_contributions(conn, model, version, no_kk, reference_date)[
            :6
        ]:
            shown = f"{float(value):.2f}" if value is not None and "." in value else value
            lines.append(f"    {feature:<30} = {shown!s:<8} {relative:+.3f}")
    if gc_result:
        lines.append(f"  last Kemensos ground check: {gc_result} on {gc_date}")
    lines.append("  sources of the inputs (round, source, submission):")
    rows = conn.execute(
        PROVENANCE_SQL,
        {
            "nik": nik,
            "no_kk": no_kk,
            "round_seq": round_seq,
            "person_fields": ["jenis_kelamin", "tanggal_lahir", *MEMBER_ATTRIBUTES],
            "family_fields": [*FAMILY_ATTRIBUTES]
            + (["pengeluaran_per_kapita"] if sumber == "BPS" else [])
            + (["groundcheck_hasil"] if gc_result else []),
        },
    ).fetchall()
    for entity, field, rid, source, submission in rows:
        owner = "person" if entity == "P" else "family"
        lines.append(f"    {owner} {field:<26} {rid}  {source:<8} {submission or '-'}")
    checks = ", ".join(
        f"({rule.sql}) AS {program.id}__{rule.name}"
        for program in programs.programs
        for rule in program.rules
    )
    context = eligibility_context_sql(version_members(version, no_kk))
    row = conn.execute(
        f"SELECT c.umur, {checks} FROM ({context}) c WHERE c.nik = %(nik)s",  # noqa: S608
        {"version": version, "reference_date": reference_date, "snapshot_pk": snapshot_pk, "nik": nik},
    ).fetchone()
    lines.append(f"  age on {reference_date}: {row[0]}")
    recipient = {
        p: prio
        for p, prio in conn.execute(
            "SELECT program, prioritas FROM publish.recipient WHERE version = %s AND nik = %s", (version, nik)
        ).fetchall()
    }
    family_programs = dict(
        conn.execute(
            "SELECT r.program, true FROM publish.recipient r JOIN publish.anggota a ON a.version = r.version "
            "AND a.nik = r.nik WHERE r.version = %s AND r.no_kk = %s AND a.hubungan_keluarga = 1",
            (version, no_kk),
        ).fetchall()
    )
    i = 1
    for program in programs.programs:
        results = []
        for rule in program.rules:
            results.append((rule, bool(row[i])))
            i += 1
        decided = program.id in recipient
        verdict = (
            "RECIPIENT" + (" (priority)" if recipient.get(program.id) else "")
            if decided
            else "not a recipient"
        )
        if not decided and program.unit == "family" and hubungan != 1 and family_programs.get(program.id):
            verdict += " in person; the family receives it, listed under its head"
        lines.append(f"  {program.id}: {verdict}")
        for rule, ok in results:
            lines.append(f"    [{'x' if ok else ' '}] {rule.description}")
        if decided != all(ok for _, ok in results):
            lines.append("    note: the configured rules differ from the ones this version was built with")
    return lines
