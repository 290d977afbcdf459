"""`dtsen cases list|show|assign|expire`: the verification cases for scripts and data ops (keys masked)."""

from __future__ import annotations

import argparse
import datetime as dt
import json


def _print(value: object, as_json: bool) -> None:
    print(json.dumps(value, indent=1, default=str) if as_json else value)


def cmd_cases_list(args: argparse.Namespace) -> int:
    from dtsen.cases.work import list_cases
    from dtsen.warehouse import engine

    with engine.connect() as conn, conn.transaction():
        found = list_cases(conn, region=args.region, state=args.state, origin=args.origin, limit=args.limit)
    if args.json:
        _print(found, True)
        return 0
    print(
        f"{'id':>8}  {'state':<8}  {'type':<10}  {'p':>1}  {'due':<10}  {'village':<10}  {'no_kk':<16}  origins"
    )
    for c in found:
        print(
            f"{c['id_kasus']:>8}  {c['state']:<8}  {c['case_type']:<10}  {c['priority']:>1}  {c['due_date']:<10}  "
            f"{c['kode_wilayah']:<10}  {c['no_kk']:<16}  {','.join(c['origins'])}"
        )
    print(
        f"{len(found)} case(s)"
        + (f" (at most {args.limit}: --limit for more)" if len(found) == args.limit else "")
    )
    return 0


def cmd_cases_show(args: argparse.Namespace) -> int:
    from dtsen.cases.work import show_case
    from dtsen.warehouse import engine

    with engine.connect() as conn, conn.transaction():
        case = show_case(conn, args.id)
    if args.json:
        _print(case, True)
        return 0
    print(
        f"case {case['id_kasus']} ({case['case_type']}): {case['state']}"
        + (f" {case['outcome']}" if case["outcome"] else "")
        + f", family {case['no_kk']} in {case['kode_wilayah']}, priority {case['priority']}, due {case['due_date']}"
        + (f", assigned to {case['assigned_to']}" if case["assigned_to"] else "")
    )
    print("reasons:")
    for r in case["reasons"]:
        print(f"  {r['origin']} {r['detail']} (since {r['round']}, raised {r['raised']}x)")
    print("history:")
    for t in case["transitions"]:
        print(f"  {t['at']}  {t['from'] or '-'} -> {t['to']}  by {t['by']}: {t['why']}")
    return 0


def cmd_cases_assign(args: argparse.Namespace) -> int:
    from dtsen.cases.work import assign_case
    from dtsen.warehouse import engine

    with engine.connect() as conn, conn.transaction():
        case = assign_case(conn, args.id, team=args.team, by=args.by, why=args.reason)
    print(
        f"case {case['id_kasus']} assigned to {case['assigned_to']}"
        if case["changed"]
        else f"case {case['id_kasus']} was already assigned to {case['assigned_to']}"
    )
    return 0


def cmd_cases_expire(args: argparse.Namespace) -> int:
    from dtsen.cases.rounds import expire_cases, lock
    from dtsen.cases.work import latest_round, today
    from dtsen.warehouse import engine

    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else today()
    with engine.connect() as conn, conn.transaction():
        lock(conn)
        expired = expire_cases(
            conn, as_of=as_of, closed_round=latest_round(conn), transition_round=None, decided_by=args.by
        )
    print(f"{expired} case(s) due before {as_of} without a field result expired")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    cases = sub.add_parser("cases", help="verification cases: list, show, assign to a field team, expire")
    actions = cases.add_subparsers(dest="cases_action", required=True)
    listing = actions.add_parser("list", help="cases, the most urgent first (keys masked)")
    listing.add_argument("--region", help="a province, regency, district or village code")
    listing.add_argument("--state", help="OPEN, ASSIGNED, VISITED, RESOLVED or EXPIRED")
    listing.add_argument("--origin", help="implausible, split_surge, stale, sanggah or usul")
    listing.add_argument("--limit", type=int, default=200)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_cases_list)
    show = actions.add_parser("show", help="one case: its reasons and its history (keys masked)")
    show.add_argument("id", type=int, help="id_kasus")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_cases_show)
    assign = actions.add_parser("assign", help="assign a case to a region's field team (recorded: who, why)")
    assign.add_argument("id", type=int, help="id_kasus")
    assign.add_argument("--team", required=True, help="the field team, e.g. PKH-3273")
    assign.add_argument("--by", required=True, help="who assigns it")
    assign.add_argument("--reason", required=True, help="why (recorded)")
    assign.set_defaults(func=cmd_cases_assign)
    expire = actions.add_parser("expire", help="expire the cases due before a date without a field result")
    expire.add_argument("--as-of", help="YYYY-MM-DD (default: today in Asia/Jakarta)")
    expire.add_argument("--by", required=True, help="who expires them (recorded)")
    expire.set_defaults(func=cmd_cases_expire)
