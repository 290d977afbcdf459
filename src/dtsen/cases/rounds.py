"""What a round does to the verification cases (sql/cases/round.sql): closes the cases its merged
Kemensos field results answer, expires the cases whose due date passed without a result, and opens a
case for every family an enabled origin flags (the published version's implausible recipients, the
round's split-surge flags, records gone stale, households' objections and proposals): one live case per
family with every origin's reason, and each objection or proposal linked to the case that answers it.
Set-based; runs in the caller's transaction; once per round (cases.round_summary)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from dtsen.cases.config import CasesConfig
from dtsen.sqlfiles import statements

SQL = "cases/round.sql"
SYSTEM = "system"
CASES_LOCK_KEY = 0x0D75E7  # one cases step (or `dtsen cases` change) at a time
ADUAN_ORIGINS = {"SANGGAH": "sanggah", "USUL": "usul"}  # aduan.csv's jenis -> the origin it raises


@dataclass
class RoundCases:
    """A small summary: counts only."""

    flags: dict[str, int] = field(default_factory=dict)  # per origin, after the settled ones
    opened: int = 0
    reasons_added: int = 0
    expired: int = 0
    resolved: dict[str, int] = field(default_factory=dict)  # per outcome
    live: dict[str, int] = field(default_factory=dict)  # the live cases per state, after the step
    overdue_regions: list[dict] = field(default_factory=list)  # past the alert share: data ops are told
    # the round's merged objections and proposals: rows, the rows a case answers, the families
    aduan: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _origin_params(config: CasesConfig, name: str, reference_date: dt.date) -> dict:
    origin = config.origin(name)
    return {"priority": origin.priority, "due_date": reference_date + dt.timedelta(days=origin.due_days)}


def open_cases(
    conn: psycopg.Connection,
    round_seq: int,
    config: CasesConfig,
    *,
    reference_date: dt.date,
    version: int | None,
    small_family_max_members: int,
) -> RoundCases:
    """Gather the enabled origins' flags and open or join cases for them. `version`: the published
    version whose implausible recipients are flagged (None: none published yet)."""
    sql = statements(SQL)
    conn.execute(sql["reset"])
    conn.execute(sql["flags"])
    base = {"round_seq": round_seq}
    enabled = set(config.enabled())
    if "implausible" in enabled and version is not None:
        conn.execute(
            sql["implausible"],
            base | _origin_params(config, "implausible", reference_date) | {"version": version},
        )
    if "split_surge" in enabled:
        conn.execute(
            sql["split_surge"],
            base
            | _origin_params(config, "split_surge", reference_date)
            | {"small_family_max_members": small_family_max_members},
        )
    if "stale" in enabled:
        stale = config.origins.stale
        conn.execute(
            sql["stale"],
            base
            | _origin_params(config, "stale", reference_date)
            | {"rounds": stale.rounds, "max_per_round": stale.max_per_round},
        )
    conn.execute(sql["aduan_rows"], base)
    linked = [jenis for jenis, origin in ADUAN_ORIGINS.items() if origin in enabled]
    for jenis in linked:
        conn.execute(
            sql["aduan"],
            base | _origin_params(config, ADUAN_ORIGINS[jenis], reference_date) | {"jenis": jenis},
        )
    conn.execute(sql["settled"])
    conn.execute(sql["index_flags"])
    summary = RoundCases(flags={origin: flags for origin, flags, _ in conn.execute(sql["counts"])})
    summary.opened = conn.execute(sql["open"], base).rowcount
    summary.reasons_added = conn.execute(sql["reasons"], base).rowcount
    conn.execute(sql["urgency"])
    conn.execute(sql["case_type"])
    conn.execute(sql["link_aduan"], base | {"linked": linked})
    rows, answered, families = conn.execute(
        "SELECT count(*), count(id_kasus), count(DISTINCT no_kk) FROM cases.aduan WHERE round_seq = %s",
        (round_seq,),
    ).fetchone()
    summary.aduan = {"rows": rows, "with_case": answered, "families": families}
    conn.execute(sql["reset"])
    return summary


def lock(conn: psycopg.Connection) -> None:
    """Serialise everything that opens, moves or closes cases (until the transaction ends)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (CASES_LOCK_KEY,))


def run_round_cases(
    conn: psycopg.Connection,
    round_seq: int,
    config: CasesConfig,
    *,
    reference_date: dt.date,
    version: int | None,
    small_family_max_members: int,
) -> dict:
    """The round's cases step, once per round: resolve (resolve_cases: the round's merged field
    results), expire (expire_cases: due before the round's reference date), then open (open_cases). A
    rerun returns what the first run did, with done_before."""
    lock(conn)
    row = conn.execute(
        "SELECT summary FROM cases.round_summary WHERE round_seq = %s", (round_seq,)
    ).fetchone()
    if row:
        return row[0] | {"done_before": True}
    # the round's field results close their cases, then overdue cases close: a flag either settles is
    # not raised again by the opening below
    resolved = resolve_cases(conn, round_seq)
    expired = expire_cases(conn, as_of=reference_date, closed_round=round_seq, transition_round=round_seq)
    summary = open_cases(
        conn,
        round_seq,
        config,
        reference_date=reference_date,
        version=version,
        small_family_max_members=small_family_max_members,
    )
    summary.expired, summary.resolved = expired, resolved
    summary.live = dict(
        conn.execute(
            "SELECT state, count(*) FROM cases.verification_case WHERE state IN ('OPEN', 'ASSIGNED', 'VISITED') "
            "GROUP BY state ORDER BY state"
        ).fetchall()
    )
    summary.overdue_regions = [
        {"kode": kode, "due": due, "expired": expired, "share": round(expired / due, 4)}
        for kode, due, expired in conn.execute(
            statements(SQL)["overdue_regions"], {"as_of": reference_date, "share": config.overdue_alert_share}
        )
    ]
    done = summary.as_dict()
    conn.execute(
        "INSERT INTO cases.round_summary (round_seq, summary) VALUES (%s, %s)", (round_seq, Jsonb(done))
    )
    return done | {"done_before": False}


def resolve_cases(conn: psycopg.Connection, round_seq: int) -> dict[str, int]:
    """Close the live cases this round's merged field results answer; how many per outcome."""
    sql = statements(SQL)
    conn.execute(sql["reset"])
    conn.execute(sql["results"], {"round_seq": round_seq})
    conn.execute(sql["index_results"])
    outcomes = {outcome: n for outcome, n in conn.execute(sql["outcomes"])}
    conn.execute(sql["resolve"], {"round_seq": round_seq})
    conn.execute(sql["reset"])
    return outcomes


def expire_cases(
    conn: psycopg.Connection,
    *,
    as_of: dt.date,
    closed_round: int,
    transition_round: int | None,
    decided_by: str = SYSTEM,
) -> int:
    """Expire the OPEN and ASSIGNED cases due before `as_of`; how many. `closed_round`: the round they
    count as closed in; `transition_round`: the round that expires them (None: a person, between rounds)."""
    return conn.execute(
        statements(SQL)["expire"],
        {
            "as_of": as_of,
            "round_seq": closed_round,
            "transition_round": transition_round,
            "decided_by": decided_by,
        },
    ).rowcount


def version_cases(conn: psycopg.Connection, version: int) -> dict:
    """A version's manifest's `cases` section (additive, counts only): what its round's cases step did
    (opened, resolved per outcome, expired overdue, flags per origin) and the live cases per state after
    it; {"checked": false} for a round the step did not run in (a dry run, or before it existed)."""
    row = conn.execute(
        "SELECT s.summary FROM publish.version v JOIN cases.round_summary s ON s.round_seq = v.round_seq "
        "WHERE v.version = %s",
        (version,),
    ).fetchone()
    if row is None:
        return {"checked": False}
    done = row[0]
    return {
        "checked": True,
        "opened": done.get("opened", 0),
        "resolved": done.get("resolved", {}),
        "expired_overdue": done.get("expired", 0),
        "flags": done.get("flags", {}),
        "live": done.get("live", {}),
    }
