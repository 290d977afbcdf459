"""Reading and moving verification cases between rounds (`dtsen cases`): lists and one case with the
family's keys masked (nobody reading them here needs the full value: a field team gets its full
work list through the registry API, under its region's scope), and a person's assignment to a region's
field team, recorded with who and why. Runs in the caller's transaction."""

from __future__ import annotations

import datetime as dt

import psycopg

from dtsen.cases.config import ORIGINS
from dtsen.cases.rounds import lock
from dtsen.domain.identity import mask
from dtsen.errors import DataError

STATES = ("OPEN", "ASSIGNED", "VISITED", "RESOLVED", "EXPIRED")
LIVE = ("OPEN", "ASSIGNED", "VISITED")


class CaseError(DataError):
    pass


def list_cases(
    conn: psycopg.Connection,
    *,
    region: str | None = None,
    state: str | None = None,
    origin: str | None = None,
    limit: int = 200,
    id_kasus: int | None = None,
) -> list[dict]:
    """Cases, the most urgent first: region a code prefix (province, regency, district or village),
    state one of STATES, origin one of ORIGINS, or the one case `id_kasus`. Keys masked."""
    if state is not None and state not in STATES:
        raise CaseError(f"unknown case state {state!r}: one of {', '.join(STATES)}")
    if origin is not None and origin not in ORIGINS:
        raise CaseError(f"unknown case origin {origin!r}: one of {', '.join(ORIGINS)}")
    if region is not None and not (region.isdigit() and len(region) in (2, 4, 6, 10)):
        raise CaseError(f"a region is a 2, 4, 6 or 10-digit code, not {region!r}")
    rows = conn.execute(
        """
        SELECT c.id_kasus, c.case_type, c.no_kk, c.kode_wilayah, c.priority, c.due_date, c.state,
               c.outcome, c.assigned_to, r.round_id,
               (SELECT array_agg(DISTINCT x.origin ORDER BY x.origin) FROM cases.case_reason x
                WHERE x.id_kasus = c.id_kasus) AS origins
        FROM cases.verification_case c JOIN ingest.round r ON r.round_seq = c.opened_round
        WHERE (%(id_kasus)s::bigint IS NULL OR c.id_kasus = %(id_kasus)s)
          AND (%(region)s::text IS NULL OR starts_with(c.kode_wilayah, %(region)s))
          AND (%(state)s::text IS NULL OR c.state = %(state)s)
          AND (%(origin)s::text IS NULL OR EXISTS (
                SELECT 1 FROM cases.case_reason x WHERE x.id_kasus = c.id_kasus AND x.origin = %(origin)s))
        ORDER BY c.state IN ('RESOLVED', 'EXPIRED'), c.priority, c.due_date, c.id_kasus
        LIMIT %(limit)s
        """,
        {"id_kasus": id_kasus, "region": region, "state": state, "origin": origin, "limit": limit},
    ).fetchall()
    return [
        {
            "id_kasus": r[0],
            "case_type": r[1],
            "no_kk": mask(str(r[2])),
            "kode_wilayah": r[3],
            "priority": r[4],
            "due_date": r[5].isoformat(),
            "state": r[6],
            "outcome": r[7],
            "assigned_to": r[8],
            "opened_round": r[9],
            "origins": list(r[10] or []),
        }
        for r in rows
    ]


def show_case(conn: psycopg.Connection, id_kasus: int) -> dict:
    """One case with its reasons and its transitions (keys masked)."""
    found = case_by_id(conn, id_kasus)
    reasons = conn.execute(
        "SELECT x.origin, x.detail, r.round_id, x.raised FROM cases.case_reason x "
        "JOIN ingest.round r ON r.round_seq = x.round_seq WHERE x.id_kasus = %s ORDER BY x.origin, x.detail",
        (id_kasus,),
    ).fetchall()
    transitions = conn.execute(
        "SELECT t.from_state, t.to_state, r.round_id, t.decided_by, t.why, t.at FROM cases.case_transition t "
        "LEFT JOIN ingest.round r ON r.round_seq = t.round_seq WHERE t.id_kasus = %s ORDER BY t.transition_pk",
        (id_kasus,),
    ).fetchall()
    return found | {
        "reasons": [{"origin": o, "detail": d, "round": rnd, "raised": n} for o, d, rnd, n in reasons],
        "transitions": [
            {"from": f, "to": t, "round": rnd, "by": by, "why": why, "at": at.isoformat()}
            for f, t, rnd, by, why, at in transitions
        ],
    }


def case_by_id(conn: psycopg.Connection, id_kasus: int) -> dict:
    """One case as `list_cases` gives it; CaseError if there is none."""
    found = list_cases(conn, id_kasus=id_kasus, limit=1)
    if not found:
        raise CaseError(f"there is no case {id_kasus}")
    return found[0]


def assign_case(conn: psycopg.Connection, id_kasus: int, *, team: str, by: str, why: str) -> dict:
    """OPEN (or ASSIGNED, to another team) -> ASSIGNED to `team`, recorded with who and why."""
    if not team.strip() or not by.strip() or not why.strip():
        raise CaseError("assigning a case needs the team, who assigns it (--by) and why (--reason)")
    lock(conn)
    row = conn.execute(
        "SELECT state, assigned_to FROM cases.verification_case WHERE id_kasus = %s FOR UPDATE", (id_kasus,)
    ).fetchone()
    if row is None:
        raise CaseError(f"there is no case {id_kasus}")
    state, current = row
    if state not in ("OPEN", "ASSIGNED"):
        raise CaseError(f"case {id_kasus} is {state}: only an OPEN or ASSIGNED case can be assigned")
    if state == "ASSIGNED" and current == team:
        return case_by_id(conn, id_kasus) | {"changed": False}
    conn.execute(
        "UPDATE cases.verification_case SET state = 'ASSIGNED', assigned_to = %s WHERE id_kasus = %s",
        (team, id_kasus),
    )
    conn.execute(
        "INSERT INTO cases.case_transition (id_kasus, from_state, to_state, decided_by, why) "
        "VALUES (%s, %s, 'ASSIGNED', %s, %s)",
        (id_kasus, state, by, f"to {team}: {why}"),
    )
    return case_by_id(conn, id_kasus) | {"changed": True}


def latest_round(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT max(round_seq) FROM ingest.round").fetchone()
    if row is None or row[0] is None:
        raise CaseError("no round has run yet: there are no cases")
    return row[0]


def today() -> dt.date:
    """Today in Asia/Jakarta (UTC+7, no daylight saving): the date cases' due dates are kept in."""
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).date()  # Asia/Jakarta
