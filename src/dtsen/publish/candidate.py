"""Build a candidate version: rank families, select program recipients, store what changed.

A candidate is built from the newest version (its basis): the persons and families the merges since
then touched, persons whose Dukcapil record changed, and families time alone moves (an age a rule
compares with, a BPS measurement growing too old) are looked at again; the rest keep their rows.
The national desil stays one ordering of every family's score. When the rules that turn the registry
into scores and recipients differ from the basis's (model, programs, their SQL), every family is
looked at again: a whole build. Either way the version is stored as spans (sql/publish/candidate.sql).

One transaction: a crash leaves no half-built candidate. Building the candidate of a round that
already has one (not discarded) returns that one: re-running a round never makes a second version.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from dtsen.errors import DataError
from dtsen.integrity.config import IntegrityConfig, load_integrity
from dtsen.programs import Program, ProgramSet
from dtsen.progress import Progress
from dtsen.rank.model import FEATURES, RankingModel, family_features_query, feature_library_sha, parse_model
from dtsen.sqlfiles import statements

log = logging.getLogger(__name__)

PUBLISH_LOCK_KEY = 0x0D75E4  # one candidate build / publication at a time


class CandidateError(DataError):
    pass


@dataclass
class CandidateSummary:
    version: int
    round_id: str
    status: str
    created_now: bool
    counts: dict = field(default_factory=dict)
    programs: dict = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    build: dict = field(default_factory=dict)


def version_members(version: int, no_kk: int | None = None) -> str:
    """A version's members (or one family's) as a relation for the feature and eligibility SQL."""
    family = f" AND no_kk = {int(no_kk)}" if no_kk is not None else ""
    return f"(SELECT * FROM publish.anggota WHERE version = {int(version)}{family})"  # noqa: S608 (ints)


def rank_query(model: RankingModel, members: str) -> str:
    """The score of each open family with members in `members`: BPS's recent measurement, else the
    model's prediction."""
    select = f"""f.no_kk, a.jumlah_anggota,
        {ranked_score_sql(model)} AS skor,
        CASE WHEN {_bps_recent(model)} THEN 'BPS' ELSE 'PMT' END AS sumber"""
    return family_features_query(select, "registry.current_family", members, model.member_features_used())


def rank_statement(model: RankingModel, members: str) -> str:
    """rescored, a scratch table of the candidate build: rank_query over `members`."""
    return f"CREATE UNLOGGED TABLE rescored AS {rank_query(model, members)}"


def ranked_score_sql(model: RankingModel, score: str | None = None) -> str:
    """A family's score as the ranking gives it, over family `f` and member aggregates `a`: BPS's
    recent measurement, else the model's prediction (`score`: that prediction's SQL, by default the
    model's own). The model fit and its impact score with this too, so they rank as a candidate does."""
    score = model.score_sql() if score is None else score
    return f"CASE WHEN {_bps_recent(model)} THEN ln(f.pengeluaran_per_kapita::float8) ELSE {score} END"


def _bps_recent(model: RankingModel) -> str:
    return (
        "(f.pengeluaran_per_kapita IS NOT NULL AND f.tanggal_survei > "
        f"%(reference_date)s::date - interval '{int(model.bps_max_age_months)} months')"
    )


def eligibility_context_sql(members: str, programs: ProgramSet, families: str = "publish.keluarga") -> str:
    """The eligibility context over `members` (a relation of publish.anggota rows) and their
    version's `families` (publish.keluarga rows)."""
    return statements(
        "publish/eligibility.sql", members=members, components=programs.components, families=families
    )["context"]


# The families a candidate decides again, as its version will hold them (the scratch table new_family).
NEW_VERSION_FAMILIES = "(SELECT %(version)s AS version, n.* FROM new_family n)"


def _recipient_statement(program: Program) -> str:
    # program ids match ^[a-z][a-z0-9_]+$; predicates hold only validated integers and codes
    return f"""INSERT INTO new_recipient (program, nik, no_kk, kode_wilayah, desil, prioritas, komponen)
        SELECT '{program.id}', c.nik, c.no_kk, c.kode_wilayah, c.desil, {program.priority_sql},
               {program.components_sql()}
        FROM eligibility_context c WHERE {program.eligible_sql()}"""  # noqa: S608


def _runs_before(generated: str) -> str:
    """The statement of candidate.sql a generated statement runs just before: the ranking before the
    scores are gathered, the integrity rules before their rows are indexed, the rest (eligibility
    context, recipients) before the recipients are."""
    if generated == "rank_families":
        return "family_scores"
    if generated.startswith("implausible_"):
        return "index_new_implausible"
    return "index_new_recipients"


def ranking_statements(model: RankingModel, programs: ProgramSet) -> list[tuple[str, str]]:
    """The statements generated from the model and program files, by the name they run under."""
    steps = [
        ("rank_families", rank_statement(model, "rescore_member")),
        (
            "eligibility_context",
            "CREATE UNLOGGED TABLE eligibility_context AS "
            + eligibility_context_sql("recheck_member", programs, NEW_VERSION_FAMILIES),
        ),
    ]
    for program in programs.programs:
        steps.append((f"recipients_{program.id}", _recipient_statement(program)))
    return steps


# How time alone moves a decision: an age compared with a number, and the reference date read by
# age() and by the BPS measurement's age. Anything else reading them makes the rules opaque.
_UMUR = re.compile(r"\bumur\b")
_UMUR_DEFINED = re.compile(r"\bAS umur\b")
_UMUR_BETWEEN = re.compile(r"\bumur\s+BETWEEN\s+(\d+)\s+AND\s+(\d+)")
_UMUR_COMPARED = re.compile(r"\bumur\s*(<=|>=|<>|<|>|=)\s*(\d+)")
_REFERENCE_DATE = "%(reference_date)s"
_REFERENCE_DATE_READS = ("age(%(reference_date)s::date,", "> %(reference_date)s::date - interval '")


def age_thresholds(texts: list[str]) -> tuple[int, ...] | None:
    """The ages at which some rule's outcome can change as a person grows a year older (None when
    a rule reads age or the reference date in a way this cannot see: then every family is re-scored)."""
    text = "\n".join(texts)
    ages: set[int] = set()
    between = _UMUR_BETWEEN.findall(text)
    compared = _UMUR_COMPARED.findall(text)
    for low, high in between:
        ages.update((int(low), int(high) + 1))
    for operator, value in compared:
        n = int(value)
        ages.update({"<": {n}, ">=": {n}, "<=": {n + 1}, ">": {n + 1}}.get(operator, {n, n + 1}))
    seen = len(_UMUR_DEFINED.findall(text)) + len(between) + len(compared)
    reads = sum(text.count(pattern) for pattern in _REFERENCE_DATE_READS)
    if seen != len(_UMUR.findall(text)) or reads != text.count(_REFERENCE_DATE):
        return None
    return tuple(sorted(ages))


def _scoring_probe() -> str:
    """The ranking statement of a model that uses every feature of the library with the same numbers:
    it changes with how a score is computed (the feature SQL, the BPS override, the statement around
    them), never with a model's coefficients."""
    document = {
        "name": "probe",
        "version": "0",
        "intercept": 0,
        "bps_measurement_max_age_months": 12,
        "terms": [{"feature": f, "type": "linear", "coefficient": 1, "default": 0} for f in FEATURES],
    }
    return rank_statement(parse_model(document), "rescore_member")


def rank_inputs(model: RankingModel, generated: list[tuple[str, str]]) -> str:
    """A hash of every rule text that turns the registry into scores and recipients, the model's own
    numbers apart: a candidate whose basis was ranked with another model (its checksum is in the
    version) re-scores every family in the incremental build; any other change rebuilds it whole."""
    parts = list(statements("publish/candidate.sql").values())  # how a version is built, too
    parts += [text for name, text in generated if name != "rank_families"]
    parts += [_scoring_probe(), feature_library_sha()]
    return hashlib.sha256("\n\0".join(parts).encode()).hexdigest()


def _desil_counts(conn: psycopg.Connection) -> dict:
    """Families and individuals per desil, from the ordering just built (family_desil)."""
    per_desil = conn.execute(
        "SELECT desil, count(*), sum(jumlah_anggota) FROM family_desil GROUP BY desil ORDER BY desil"
    ).fetchall()
    return {str(d): {"families": f, "individuals": int(i)} for d, f, i in per_desil}


def program_changes(conn: psycopg.Connection, version: int, previous: int | None) -> dict:
    """Recipients per program and how many were added/removed against the previous version, from
    the recipient counts and the spans opened or closed between the two versions."""
    return {
        program: {"recipients": int(r), "added": a, "removed": d}
        for program, r, a, d in conn.execute(
            statements("publish/version_changes.sql")["program_changes"],
            {"version": version, "previous": previous if previous is not None else -1},
        )
    }


@dataclass(frozen=True)
class Basis:
    """The newest version, which a candidate is built as the differences from."""

    version: int
    round_seq: int
    reference_date: object
    snapshot_pk: int | None
    rank_inputs: str | None
    status: str
    counts: dict
    model: dict  # the ranking model it was ranked with: name, version, sha256

    @classmethod
    def newest(cls, conn: psycopg.Connection) -> Basis | None:
        row = conn.execute(
            "SELECT v.version, v.round_seq, v.reference_date, r.dukcapil_snapshot_pk, v.rank_inputs, v.status, "
            "v.counts, v.ranking_model FROM publish.version v JOIN ingest.round r ON r.round_seq = v.round_seq "
            "ORDER BY v.version DESC LIMIT 1"
        ).fetchone()
        return cls(*row[:6], row[6] or {}, row[7] or {}) if row else None

    def step_seconds(self, conn: psycopg.Connection) -> dict[str, float] | None:
        """What each statement of its own build took (the progress lines' estimate of what remains)."""
        row = conn.execute(
            "SELECT build->'step_seconds' FROM publish.version WHERE version = %s", (self.version,)
        ).fetchone()
        return row[0] if row and row[0] else None

    def model_change(self, model: RankingModel) -> str | None:
        """How the model differs from the basis's (then every family is re-scored), or None."""
        if self.model.get("sha256") == model.sha256:
            return None
        was = f"{self.model.get('name')} v{self.model.get('version')} ({str(self.model.get('sha256'))[:12]})"
        return f"the ranking model changed from {was} to {model.name} v{model.version} ({model.sha256[:12]})"

    def why_whole(self, conn: psycopg.Connection, round_seq: int, inputs: str, ages: object) -> str | None:
        """Why a candidate on this basis must re-score every family, or None if it need not."""
        if self.status == "DISCARDED":
            return f"the newest version {self.version} was discarded"
        if self.rank_inputs != inputs:
            return (
                f"the program rules, the scoring SQL or the build's SQL differ from version {self.version}'s"
            )
        if ages is None:
            return "a rule reads age or the reference date in a way the incremental build cannot follow"
        if self.reference_date is None or "individuals" not in self.counts:
            return f"version {self.version} predates incremental builds"
        unrecorded = conn.execute(
            "SELECT count(*) FROM ingest.round WHERE round_seq > %s AND round_seq <= %s "
            "AND status IN ('MERGED', 'PUBLISHED') AND NOT touched_recorded",
            (self.round_seq, round_seq),
        ).fetchone()[0]
        if unrecorded:
            return (
                f"{unrecorded} round(s) since version {self.version} were merged before touches were recorded"
            )
        return None


SCRATCH = "scratch_candidate"  # the build's scratch tables (migration 0041), first on its search path


@dataclass
class CandidatePlan:
    """A candidate to build: its number, basis, parameters and statements, by phase."""

    version: int
    round_id: str
    round_seq: int
    reference_date: object
    basis: Basis | None
    previous: int | None
    whole: str | None
    rescore_all: str | None
    model_reference: dict
    inputs: str
    params: dict
    compute: list[tuple[str, str]]
    apply: list[tuple[str, str]]
    finish: list[tuple[str, str]]
    programs: ProgramSet
    summary: CandidateSummary
    progress: Progress | None = None


def build_candidate(
    conn: psycopg.Connection,
    round_id: str,
    model: RankingModel,
    programs: ProgramSet,
    integrity: IntegrityConfig | None = None,
) -> CandidateSummary:
    """Build the round's candidate inside the caller's transaction, in one session (a dry run, the
    tests; the round uses build_candidate_in_sessions)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
    plan = plan_candidate(conn, round_id, model, programs, integrity)
    if isinstance(plan, CandidateSummary):
        return plan
    path = conn.execute("SELECT current_setting('search_path')").fetchone()[0]
    conn.execute("SELECT set_config('search_path', %s, true)", (f"{SCRATCH}, {path}",))
    clear_scratch(conn)
    compute(conn, plan)
    started = time.perf_counter()
    applied(plan, apply_share(conn, plan, share_bounds(conn, 1)[0]), started)
    finish(conn, plan, sessions=1)
    plan.summary.programs = settle(conn, plan.version, plan.previous, plan.programs)
    clear_scratch(conn)
    conn.execute("SELECT set_config('search_path', %s, true)", (path,))
    return plan.summary


def clear_scratch(conn: psycopg.Connection) -> None:
    """Drop the scratch schema's tables and views (an earlier build's, or this one's when done)."""
    rows = conn.execute(
        "SELECT format('%%I.%%I', schemaname, name), kind FROM ("
        " SELECT schemaname, tablename AS name, 'TABLE' AS kind FROM pg_tables WHERE schemaname = %(s)s"
        " UNION ALL SELECT schemaname, viewname, 'VIEW' FROM pg_views WHERE schemaname = %(s)s) x",
        {"s": SCRATCH},
    ).fetchall()
    views = [name for name, kind in rows if kind == "VIEW"]
    tables = [name for name, kind in rows if kind == "TABLE"]
    if views:
        conn.execute(f"DROP VIEW {', '.join(views)}")  # names from the catalog, quoted by format()
    if tables:
        conn.execute(f"DROP TABLE {', '.join(tables)}")


def plan_candidate(
    conn: psycopg.Connection,
    round_id: str,
    model: RankingModel,
    programs: ProgramSet,
    integrity: IntegrityConfig | None,
) -> CandidatePlan | CandidateSummary:
    """What to build (the round's existing candidate, if it has one)."""
    found = conn.execute(
        "SELECT round_seq, status, reference_date, dukcapil_snapshot_pk FROM ingest.round WHERE round_id = %s",
        (round_id,),
    ).fetchone()
    if not found:
        raise CandidateError(f"round {round_id} is unknown; stage, validate and merge it first")
    round_seq, status, reference_date, snapshot_pk = found
    existing = conn.execute(
        "SELECT version, status, counts, programs, previous_version FROM publish.version "
        "WHERE round_seq = %s AND status <> 'DISCARDED'",
        (round_seq,),
    ).fetchone()
    if existing:
        version, status, counts, changes, previous = existing
        if changes is None:  # a build over several sessions stopped after its decision: finish it
            changes = settle(conn, version, previous, programs)
        return CandidateSummary(version, round_id, status, False, counts or {}, changes)
    if status != "MERGED":
        raise CandidateError(f"round {round_id} is {status}; only a merged round can be ranked and published")
    later = conn.execute(
        "SELECT round_id FROM ingest.round WHERE round_seq > %s AND status IN ('MERGED', 'PUBLISHED') LIMIT 1",
        (round_seq,),
    ).fetchone()
    if later:
        raise CandidateError(
            f"round {later[0]} was merged after {round_id}: the registry no longer holds {round_id}'s state"
        )
    basis = Basis.newest(conn)
    version = basis.version + 1 if basis else 1
    previous = conn.execute("SELECT max(version) FROM publish.version WHERE status = 'PUBLISHED'").fetchone()[
        0
    ]
    generated = ranking_statements(model, programs)
    integrity = integrity or load_integrity()
    implausible = integrity.statements()
    inputs = rank_inputs(model, generated + implausible)
    ages = age_thresholds([text for _, text in generated])
    whole = "there is no earlier version" if basis is None else basis.why_whole(conn, round_seq, inputs, ages)
    # another model alone: the members stand as they are, every family is scored again
    rescore_all = None if whole or basis is None else basis.model_change(model)
    dates = sorted(d for d in (reference_date, basis.reference_date if basis else None) if d is not None)
    params = {
        "version": version,
        "basis": basis.version if basis else -1,
        "reference_date": reference_date,
        "snapshot_pk": snapshot_pk,
        "round_seq": round_seq,
        "basis_round_seq": basis.round_seq if basis else 0,
        "basis_snapshot_pk": (basis.snapshot_pk if basis else None) or -1,
        "age_thresholds": list(ages or ()),
        "date_from": dates[0] if dates else None,
        "date_to": dates[-1] if dates else None,
        "bps_months": model.bps_max_age_months,
        "implausible_survey_months": integrity.survey_months,
    }
    files = statements("publish/candidate.sql")
    find = (
        ("all_persons", "all_families")
        if whole
        else ("changed_persons", "all_families" if rescore_all else "changed_families")
    )
    skip = {"changed_persons", "changed_families", "all_persons", "all_families"} - set(find)
    compute = [
        (n, t)
        for n, t in files.items()
        if n not in skip and not n.startswith(("apply_", "finish_", "settle_"))
    ]
    for name, text in generated + implausible:
        compute.insert([n for n, _ in compute].index(_runs_before(name)), (name, text))
    phase = lambda prefix: [(n, t) for n, t in files.items() if n.startswith(prefix)]  # noqa: E731
    return CandidatePlan(
        version=version,
        round_id=round_id,
        round_seq=round_seq,
        reference_date=reference_date,
        basis=basis,
        previous=previous,
        whole=whole,
        rescore_all=rescore_all,
        model_reference=model.reference | {"programs_version": programs.version},
        inputs=inputs,
        params=params,
        compute=compute,
        apply=phase("apply_"),
        finish=phase("finish_"),
        programs=programs,
        summary=CandidateSummary(version, round_id, "CANDIDATE", True),
    )


def compute(
    conn: psycopg.Connection,
    plan: CandidatePlan,
    statements: list[tuple[str, str]] | None = None,
    parts: list[str] | None = None,
) -> None:
    """Work out the version in scratch tables; nothing else is written. All of plan.compute, or the
    `statements` of it; the first call starts the build's progress, over `parts` (default: each
    compute statement, then the apply)."""
    basis = plan.basis
    if plan.progress is None:
        plan.progress = Progress(
            f"candidate v{plan.version} ({'whole' if plan.whole else 'incremental'})",
            parts or [name for name, _ in plan.compute] + ["apply"],
            basis.step_seconds(conn) if basis and not plan.whole else None,
        )
        plan.summary.step_seconds.clear()
    for name, statement in plan.compute if statements is None else statements:
        started = time.perf_counter()
        rows = conn.execute(
            statement, plan.params
        ).rowcount  # always bound: SQL files write a literal % as %%
        plan.summary.step_seconds[name] = time.perf_counter() - started
        plan.progress.finished(name, rows, plan.summary.step_seconds[name])


def family_local(compute: list[tuple[str, str]]) -> tuple[list, list, list]:
    """The compute statements before, of and after the block that reads each family's own members and
    rows only (the eligibility context, then each program's recipients): that block can be computed
    for one range of KK numbers at a time (dtsen.publish.in_sessions). Empty block: none here."""
    names = [name for name, _ in compute]
    if "eligibility_context" not in names:
        return compute, [], []
    first = last = names.index("eligibility_context")
    while last + 1 < len(names) and names[last + 1].startswith("recipients_"):
        last += 1
    return compute[:first], compute[first : last + 1], compute[last + 1 :]


def family_share_statements(
    block: list[tuple[str, str]], programs: ProgramSet, low: int | None, high: int | None
) -> list[tuple[str, str]]:
    """The family-local block for the families whose KK is in [low, high) (None: open-ended): the
    eligibility context over those families' members into the session's own temporary table (found
    before the scratch schema's by the recipients' statements, which are the same), then the
    recipients, inserted into the shared new_recipient table."""
    bounds = ["true"]
    if low is not None:
        bounds.append(f"no_kk >= {int(low)}")
    if high is not None:
        bounds.append(f"no_kk < {int(high)}")
    within = " AND ".join(bounds)
    context = eligibility_context_sql(
        f"(SELECT * FROM recheck_member WHERE {within})",  # noqa: S608 (integers)
        programs,
        f"(SELECT %(version)s AS version, n.* FROM new_family n WHERE {within})",  # noqa: S608 (integers)
    )
    return [
        (name, "CREATE TEMP TABLE eligibility_context ON COMMIT DROP AS " + context)
        if name == "eligibility_context"
        else (name, statement)
        for name, statement in block
    ]


def applied(plan: CandidatePlan, rows: int, started: float) -> None:
    plan.summary.step_seconds["apply"] = time.perf_counter() - started
    if plan.progress is not None:
        plan.progress.finished("apply", rows, plan.summary.step_seconds["apply"])


# Each span table and the key its writer sessions split it by (sql/publish/candidate.sql, in_share).
SHARE_KEYS = {"anggota": "nik", "keluarga": "no_kk", "recipient": "nik", "implausible": "no_kk"}


def share_bounds(conn: psycopg.Connection, sessions: int) -> list[dict]:
    """The key range of each session's share of every span table: cut at the quantiles of the keys
    it closes and opens, so the shares are about equal and each writes its own part of each index."""
    shares: list[dict] = [{} for _ in range(sessions)]
    fractions = [k / sessions for k in range(1, sessions)]
    for table, key in SHARE_KEYS.items():
        cuts = [None]
        if fractions:
            cuts += conn.execute(
                f"SELECT percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY k) FROM ("  # noqa: S608 (constants)
                f"SELECT {key} AS k FROM opening_{table} UNION ALL SELECT {key} FROM closing_{table}) x",
                (fractions,),
            ).fetchone()[0] or [None] * len(fractions)
        cuts.append(None)
        for k, share in enumerate(shares):
            low, high = cuts[k], cuts[k + 1]
            if k > 0 and low is None:  # nothing to write: an empty range
                low = high = 0
            share |= {f"low_{table}": low, f"high_{table}": high}
    return shares


def apply_share(conn: psycopg.Connection, plan: CandidatePlan, share: dict) -> int:
    """Write one share of the spans (close, then open, per table; `share`: its key ranges); rows written."""
    params = plan.params | share
    return sum(conn.execute(statement, params).rowcount for _, statement in plan.apply)


def finish(conn: psycopg.Connection, plan: CandidatePlan, sessions: int) -> None:
    """The version row with its counts (the decision, in a build over several sessions)."""
    conn.execute(
        "INSERT INTO publish.version (version, round_seq, status, previous_version, ranking_model, "
        "reference_date, rank_inputs) VALUES (%s, %s, 'CANDIDATE', %s, %s, %s, %s)",
        (
            plan.version,
            plan.round_seq,
            plan.previous,
            Jsonb(plan.model_reference),
            plan.reference_date,
            plan.inputs,
        ),
    )
    for name, statement in plan.finish:
        started = time.perf_counter()
        conn.execute(statement, plan.params)
        plan.summary.step_seconds[name.removeprefix("finish_")] = time.perf_counter() - started
    summary = plan.summary
    summary.build = _build_record(conn, plan.basis, plan.whole) | {
        "rescore_all": plan.rescore_all,
        "sessions": sessions,
        "step_seconds": {name: round(t, 2) for name, t in summary.step_seconds.items()},
    }
    summary.counts = _counts(conn, plan.basis)
    conn.execute(
        "UPDATE publish.version SET counts = %s, build = %s WHERE version = %s",
        (Jsonb(summary.counts), Jsonb(summary.build), plan.version),
    )
    if plan.whole:
        log.info("candidate v%s built whole: %s", plan.version, plan.whole)


def settle(conn: psycopg.Connection, version: int, previous: int | None, programs: ProgramSet) -> dict:
    """Once the spans are written: fresh statistics, and the recipients per program against the
    newest published version (read from the spans)."""
    for name, statement in statements("publish/candidate.sql").items():
        if name.startswith("settle_"):
            conn.execute(statement)
    empty = {"recipients": 0, "added": 0, "removed": 0}
    changes = {p.id: dict(empty) for p in programs.programs} | program_changes(conn, version, previous)
    conn.execute("UPDATE publish.version SET programs = %s WHERE version = %s", (Jsonb(changes), version))
    return changes


def _build_record(conn: psycopg.Connection, basis: Basis | None, whole: str | None) -> dict:
    """How the version was built, for operators and the scale benchmark (counts only)."""
    looked_at = conn.execute(
        "SELECT (SELECT count(*) FROM cand_person), (SELECT count(*) FROM cand_family), "
        "(SELECT count(*) FROM rescored), (SELECT count(*) FROM new_family)"
    ).fetchone()
    written = conn.execute(
        "SELECT 'keluarga', (SELECT count(*) FROM opening_keluarga), (SELECT count(*) FROM closing_keluarga) "
        "UNION ALL SELECT 'anggota', (SELECT count(*) FROM opening_anggota), (SELECT count(*) FROM closing_anggota) "
        "UNION ALL SELECT 'recipient', (SELECT count(*) FROM opening_recipient), "
        "(SELECT count(*) FROM closing_recipient)"
    )
    return {
        "mode": "whole" if whole else "incremental",
        "why_whole": whole,
        "basis": basis.version if basis else None,
        "persons_looked_at": looked_at[0],
        "families_looked_at": looked_at[1],
        "families_rescored": looked_at[2],
        "families_rewritten": looked_at[3],
        "rows": {table: {"opened": o, "closed": c} for table, o, c in written},
    }


def _counts(conn: psycopg.Connection, basis: Basis | None) -> dict:
    """Individuals and families in the version, and per desil: the basis's count of individuals plus
    the members opened minus those closed, and the families from the ordering just built."""
    desil = _desil_counts(conn)
    opened, closed = conn.execute(
        "SELECT (SELECT count(*) FROM opening_anggota), (SELECT count(*) FROM closing_anggota)"
    ).fetchone()
    if basis is None:
        before = 0
    elif "individuals" in basis.counts:
        before = basis.counts["individuals"]
    else:
        before = conn.execute(
            "SELECT count(*) FROM publish.anggota WHERE version = %s", (basis.version,)
        ).fetchone()[0]
    return {
        "individuals": before + opened - closed,
        "families": sum(d["families"] for d in desil.values()),
        "desil": desil,
    }
