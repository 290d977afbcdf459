"""Explain one person's decisions in a version: desil, score and its main terms, sources, program rules.

Everything is recomputed from the version's frozen rows with the same SQL the version was built
with (the model's terms, the eligibility context, the programs' predicates), so the explanation is
the decision, not a paraphrase of it. The NIK is shown masked; names are not shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


@dataclass
class ProgramVerdict:
    program_id: str
    recipient: bool
    priority: bool
    family_receives: bool  # a family program received by this person's family, listed under its head
    rules: list[tuple[str, bool]]  # (description, held)


@dataclass
class Explanation:
    """The facts behind one person's place in one version (no name; the NIK and KK shown masked)."""

    nik: int
    version: int
    status: str
    round_id: str
    reference_date: object
    absent_why: str | None = None  # set when the person is not in the version
    no_kk: int | None = None
    hubungan: int | None = None
    kode_wilayah: str | None = None
    family_size: int | None = None
    desil: int | None = None
    score: float | None = None
    score_source: str | None = None
    model_ref: dict = field(default_factory=dict)
    model_mismatch: bool = False
    terms: list[tuple] = field(default_factory=list)  # (feature, value, contribution, relative)
    groundcheck: tuple | None = None  # (result, date)
    provenance: list[tuple] = field(default_factory=list)  # (entity, field, round, source, submission)
    age: int | None = None
    programs: list[ProgramVerdict] = field(default_factory=list)


def _version_meta(conn: psycopg.Connection, version: int | None) -> tuple:
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
    return (version, *meta)


def _absent_why(conn: psycopg.Connection, nik: int) -> str:
    closed = conn.execute(
        "SELECT is_open, closed_reason, closed_round FROM registry.person WHERE nik = %s", (nik,)
    ).fetchone()
    if not closed:
        return "not in the registry"
    return (
        f"closed in the registry ({closed[1]}, round #{closed[2]})"
        if not closed[0]
        else "not yet in the registry then"
    )


def _program_verdicts(
    conn: psycopg.Connection, e: Explanation, programs: ProgramSet, snapshot_pk: int | None
) -> tuple[int, list[ProgramVerdict]]:
    """Each program's rules evaluated with the version's own SQL, and whether the person received it."""
    checks = ", ".join(
        f"({rule.sql}) AS {program.id}__{rule.name}"
        for program in programs.programs
        for rule in program.rules
    )
    context = eligibility_context_sql(version_members(e.version, e.no_kk), programs)
    row = conn.execute(
        f"SELECT c.umur, {checks} FROM ({context}) c WHERE c.nik = %(nik)s",  # noqa: S608
        {"version": e.version, "reference_date": e.reference_date, "snapshot_pk": snapshot_pk, "nik": e.nik},
    ).fetchone()
    recipient = dict(
        conn.execute(
            "SELECT program, prioritas FROM publish.recipient WHERE version = %s AND nik = %s",
            (e.version, e.nik),
        ).fetchall()
    )
    family_programs = {
        p
        for (p,) in conn.execute(
            "SELECT r.program FROM publish.recipient r JOIN publish.anggota a ON a.version = r.version "
            "AND a.nik = r.nik WHERE r.version = %s AND r.no_kk = %s AND a.hubungan_keluarga = 1",
            (e.version, e.no_kk),
        )
    }
    verdicts, i = [], 1
    for program in programs.programs:
        rules = [(rule.description, bool(row[i + k])) for k, rule in enumerate(program.rules)]
        i += len(program.rules)
        verdicts.append(
            ProgramVerdict(
                program.id,
                program.id in recipient,
                bool(recipient.get(program.id)),
                program.unit == "family" and e.hubungan != 1 and program.id in family_programs,
                rules,
            )
        )
    return row[0], verdicts


def gather(
    conn: psycopg.Connection, nik: int, version: int | None, model: RankingModel, programs: ProgramSet
) -> Explanation:
    """What explains a person's desil and programs in a version, read with the version's own SQL."""
    version, status, round_seq, round_id, reference_date, snapshot_pk, model_ref = _version_meta(
        conn, version
    )
    e = Explanation(nik, version, status, round_id, reference_date)
    person = conn.execute(
        "SELECT no_kk, hubungan_keluarga FROM publish.anggota WHERE version = %s AND nik = %s", (version, nik)
    ).fetchone()
    if not person:
        e.absent_why = _absent_why(conn, nik)
        return e
    e.no_kk, e.hubungan = person
    e.model_ref, e.model_mismatch = model_ref, model_ref.get("sha256") != model.sha256
    e.desil, e.score, e.score_source, e.family_size, e.kode_wilayah, gc_result, gc_date = conn.execute(
        "SELECT desil, skor_kesejahteraan, skor_sumber, jumlah_anggota, kode_wilayah, groundcheck_hasil, "
        "groundcheck_tanggal FROM publish.keluarga WHERE version = %s AND no_kk = %s",
        (version, e.no_kk),
    ).fetchone()
    e.groundcheck = (gc_result, gc_date) if gc_result else None
    if e.score_source != "BPS":
        e.terms = _term_contributions(conn, model, version, e.no_kk, reference_date)[:6]
    e.provenance = conn.execute(
        PROVENANCE_SQL,
        {
            "nik": nik,
            "no_kk": e.no_kk,
            "round_seq": round_seq,
            "person_fields": ["jenis_kelamin", "tanggal_lahir", *MEMBER_ATTRIBUTES],
            "family_fields": [*FAMILY_ATTRIBUTES]
            + (["pengeluaran_per_kapita"] if e.score_source == "BPS" else [])
            + (["groundcheck_hasil"] if gc_result else []),
        },
    ).fetchall()
    e.age, e.programs = _program_verdicts(conn, e, programs, snapshot_pk)
    return e


def render(e: Explanation) -> list[str]:
    lines = [
        f"person {mask(str(e.nik))} in version {e.version} ({e.status}, round {e.round_id}, ages on {e.reference_date})"
    ]
    if e.absent_why:
        return lines + [f"  not in this version: {e.absent_why}; a recipient of no program"]
    ref = e.model_ref
    if e.model_mismatch:
        lines.append(
            f"  note: this version was ranked with model {ref.get('name')} v{ref.get('version')} "
            f"({ref.get('sha256', '')[:12]}), not the configured one: term contributions below may differ"
        )
    lines.append(
        f"  family {mask(str(e.no_kk))} in {e.kode_wilayah}: {e.family_size} members, this person is the "
        f"{HUBUNGAN.get(e.hubungan, e.hubungan)}"
    )
    lines.append(
        f"  desil {e.desil}; score {e.score:.3f} (log monthly per-capita expenditure, ~Rp {round(math.exp(e.score)):,})"
    )
    if e.score_source == "BPS":
        lines.append(
            "  the score is BPS's measured per-capita expenditure (surveyed within the last 12 months)"
        )
    else:
        lines.append(f"  the score is predicted by model {ref.get('name')} v{ref.get('version')}; main terms")
        lines.append("  (contribution relative to an average family, in log points):")
        for feature, value, _, relative in e.terms:
            shown = f"{float(value):.2f}" if value is not None and "." in value else value
            lines.append(f"    {feature:<30} = {shown!s:<8} {relative:+.3f}")
    if e.groundcheck:
        lines.append(f"  last Kemensos ground check: {e.groundcheck[0]} on {e.groundcheck[1]}")
    lines.append("  sources of the inputs (round, source, submission):")
    for entity, name, rid, source, submission in e.provenance:
        lines.append(
            f"    {'person' if entity == 'P' else 'family'} {name:<26} {rid}  {source:<8} {submission or '-'}"
        )
    lines.append(f"  age on {e.reference_date}: {e.age}")
    for p in e.programs:
        verdict = ("RECIPIENT" + (" (priority)" if p.priority else "")) if p.recipient else "not a recipient"
        if p.family_receives and not p.recipient:
            verdict += " in person; the family receives it, listed under its head"
        lines.append(f"  {p.program_id}: {verdict}")
        lines += [f"    [{'x' if ok else ' '}] {description}" for description, ok in p.rules]
        if p.recipient != all(ok for _, ok in p.rules):
            lines.append("    note: the configured rules differ from the ones this version was built with")
    return lines


def explain(
    conn: psycopg.Connection, nik: int, version: int | None, model: RankingModel, programs: ProgramSet
) -> list[str]:
    """The lines `dtsen explain` prints: gather the facts, then render them."""
    return render(gather(conn, nik, version, model, programs))
