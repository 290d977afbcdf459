"""`dtsen` command line: the warehouse, a round's steps, versions and approvals, the deployment check.

Development tooling (the generator, the main job on the sample, local Airflow) is `dtsen-dev`."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from dtsen.config import settings
from dtsen.warehouse import engine, localpg
from dtsen.warehouse.migrate import migrate


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Great Expectations logs every expectation it builds at INFO; operators need our lines only.
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.ERROR)


def opens_warehouse(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command that uses the warehouse first removes what killed publications left in the publish
    root (`versions/.incomplete-*`, full personal data), unless a running publication is writing it;
    what it found is handed to the command as `args.leftovers` (`dtsen versions` shows it)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from dtsen.publish.version import Leftovers, incomplete_folders, remove_incomplete

        root = getattr(args, "publish_root", None) or settings().publish_root  # --publish-root first
        versions = Path(root) / "versions"
        args.leftovers = Leftovers()
        if incomplete_folders(versions):  # without leftovers on disk it does not connect at all
            with engine.connect() as conn, conn.transaction():
                args.leftovers = remove_incomplete(conn, versions)
        return command(args)

    return run


def cmd_db_start(_: argparse.Namespace) -> int:
    cfg = settings()
    if cfg.database_url:
        print("DTSEN_DATABASE_URL is set: the warehouse is external, nothing to start.")
        return 0
    cluster = localpg.ensure_started(cfg)
    print(f"private PostgreSQL running: {cluster.url} (data in {cluster.data_dir})")
    return 0


def cmd_db_stop(_: argparse.Namespace) -> int:
    was_running = localpg.stop()
    print("private PostgreSQL stopped" if was_running else "private PostgreSQL was not running")
    return 0


def cmd_db_status(_: argparse.Namespace) -> int:
    cfg = settings()
    if cfg.database_url:
        print(f"external warehouse: {engine.describe_target(cfg.database_url)}")
        return 0
    cluster = localpg.cluster_for(cfg)
    state = "running" if localpg.is_running(cluster) else "stopped"
    print(f"private PostgreSQL {state}: {cluster.url} (data in {cluster.data_dir})")
    return 0


def cmd_db_url(_: argparse.Namespace) -> int:
    print(engine.database_url())
    return 0


@opens_warehouse
def cmd_db_migrate(_: argparse.Namespace) -> int:
    from dtsen.warehouse.roles import ensure_logins

    with engine.connect("owner") as conn:  # only migrations run as the owner
        report = migrate(conn)
        logins = ensure_logins(conn, settings(), engine.database_url("owner"))
    print(
        f"migrations applied now: {len(report.applied)} {report.applied}; already applied: {len(report.already)}"
    )
    if report.reference_loaded:
        print(f"reference data loaded: {report.reference_rows}")
    else:
        print(f"reference data already current ({report.reference_rows.get('total', 0)} region codes)")
    for line in logins:
        print(f"warehouse login of the {line}")
    return 0


def cmd_check_deployment(_: argparse.Namespace) -> int:
    import os

    from dtsen.deployment import check_deployment

    ok, lines = check_deployment(os.environ)
    print("\n".join(lines), file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _context(args: argparse.Namespace):
    from dtsen.round import RoundContext

    return RoundContext.create(
        args.round,
        landing_root=getattr(args, "landing_root", None),
        publish_root=getattr(args, "publish_root", None),
        dry_run=getattr(args, "dry_run", False),
        approve_drift_reason=getattr(args, "approve_drift", None),
        approved_by=getattr(args, "by", None),
        quality_gate_threshold=getattr(args, "quality_gate", None),
    )


def print_round(ctx, summaries: dict) -> int:
    """What this run's steps did (done now, done by an earlier run, what a dry run would change), then
    the round's report from the warehouse and the version's; exit 3 while the candidate is blocked."""
    from dtsen.report import format_round, format_steps, format_version, round_report

    print("\n".join(format_steps(summaries)))
    audited = summaries.get("rank_and_audit") or {}
    with engine.connect() as conn:
        report = round_report(conn, ctx.round_id, ctx.settings.publish_root)
        print("\n".join(format_round(report)))
        if report.version is not None and "rank_and_audit" in summaries and not audited.get("dry_run"):
            print("\n".join(format_version(conn, report.version)))
    return 3 if audited.get("status") == "BLOCKED" else 0


@opens_warehouse
def cmd_run_round(args: argparse.Namespace) -> int:
    from dtsen.round import run_round

    ctx = _context(args)
    return print_round(ctx, run_round(ctx, until=args.until))


@opens_warehouse
def cmd_validate(args: argparse.Namespace) -> int:
    from dtsen.round import run_round

    ctx = _context(args)
    return print_round(ctx, run_round(ctx, until="finish_validation"))


@opens_warehouse
def cmd_publish(args: argparse.Namespace) -> int:
    from dtsen.round import run_round

    ctx = _context(args)
    return print_round(ctx, run_round(ctx, only=("rank_and_audit", "publish")))


@opens_warehouse
def cmd_approve(args: argparse.Namespace) -> int:
    from dtsen.publish.audit import approve_version

    with engine.connect() as conn, conn.transaction():
        approve_version(conn, args.version, args.by, args.reason)
    print(f"version {args.version} approved by {args.by}; run `dtsen publish --round ...` to publish it")
    return 0


@opens_warehouse
def cmd_decide_extract(args: argparse.Namespace) -> int:
    import datetime as dt

    from dtsen.errors import DataError
    from dtsen.ingest.dukcapil_review import APPLY, KEEP_REFERENCE, decide, waiting_on_date

    day = dt.date.fromisoformat(args.date)
    if not args.reason.strip() or not args.by.strip():
        raise DataError(
            "a decision on an extract needs who decides (--by) and why (--reason): both are recorded"
        )
    outcome = APPLY if args.apply else KEEP_REFERENCE
    with engine.connect() as conn, conn.transaction():
        review = waiting_on_date(conn, day)
        if review is None:
            raise DataError(f"no Dukcapil extract of {day} is waiting for a decision")
        status, settled = decide(conn, review.review_pk, outcome, args.by.strip(), "cli", args.reason.strip())
    if not settled:  # another answer came first
        raise DataError(f"the Dukcapil extract of {day} was decided meanwhile ({status}); nothing recorded")
    then = "it is applied" if outcome == APPLY else "it is set aside and the reference stays as it is"
    print(
        f"Dukcapil extract {day} (review {review.review_pk}): {outcome} by {args.by}; {then} when the round runs again"
    )
    return 0


@opens_warehouse
def cmd_discard(args: argparse.Namespace) -> int:
    from dtsen.publish.audit import discard_version

    with engine.connect() as conn, conn.transaction():
        discard_version(conn, args.version, f"{args.by}: {args.reason}")
    print(f"version {args.version} discarded; the next run of its round builds a new candidate")
    return 0


@opens_warehouse
def cmd_versions(args: argparse.Namespace) -> int:
    from dtsen.publish.version import unrecorded_warning

    root = settings().publish_root
    with engine.connect() as conn:
        rows = conn.execute(
            "SELECT v.version, r.round_id, v.status, v.published_at, v.approved_by FROM publish.version v "
            "JOIN ingest.round r ON r.round_seq = v.round_seq ORDER BY v.version"
        ).fetchall()
        current = conn.execute("SELECT version FROM publish.current_version").fetchone()
        warning = unrecorded_warning(conn, root)
    for version, round_id, status, published_at, approved_by in rows:
        mark = " (current)" if current and version == current[0] else ""
        when = published_at.isoformat(timespec="seconds") if published_at else "-"
        approval = f", approved by {approved_by}" if approved_by else ""
        print(f"version {version:>4}  round {round_id}  {status:<10} published {when}{approval}{mark}")
    for line in args.leftovers.lines(root / "versions"):  # what opens_warehouse found on the way in
        print(line)
    problems = [*args.leftovers.problems(root / "versions"), *([warning] if warning else [])]
    for problem in problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    return 4 if problems else 0


def _explained_model(conn, version: int | None, file):
    """The model the version was ranked with, from the warehouse; else the adopted one, else the file
    (explain notes when the version's checksum differs from the model it is given)."""
    from dtsen.model.store import adopted, model_of_version
    from dtsen.rank.model import load_model

    if version is None:
        version = conn.execute("SELECT version FROM publish.current_version").fetchone()
        version = version[0] if version else None
    model = model_of_version(conn, version) if version is not None else None
    if model is None:
        current = adopted(conn)
        model = current[1] if current else load_model(file)
    return model


@opens_warehouse
def cmd_explain(args: argparse.Namespace) -> int:
    from dtsen.config import settings
    from dtsen.programs import load_programs
    from dtsen.publish.explain import ExplainError, explain
    from dtsen.warehouse import engine

    cfg = settings()
    if not (args.nik.isdigit() and len(args.nik) == 16):
        print("a NIK is 16 digits", file=sys.stderr)
        return 2
    with engine.connect() as conn:
        if args.version is None:
            from dtsen.publish.version import unrecorded_warning

            warning = unrecorded_warning(conn, cfg.publish_root)
            if warning:
                print(f"WARNING: {warning}", file=sys.stderr)
        try:
            lines = explain(
                conn,
                int(args.nik),
                args.version,
                _explained_model(conn, args.version, cfg.ranking_model_path),
                load_programs(cfg.programs_path),
            )
        except ExplainError as exc:
            print(str(exc), file=sys.stderr)
            return 1
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dtsen", description="DTSEN update pipeline")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the warehouse").add_subparsers(dest="db_command", required=True)
    db.add_parser("start", help="start (creating on first use) the private local cluster").set_defaults(
        func=cmd_db_start
    )
    db.add_parser("stop", help="stop the private local cluster").set_defaults(func=cmd_db_stop)
    db.add_parser("status", help="where the warehouse is and whether it runs").set_defaults(
        func=cmd_db_status
    )
    db.add_parser("url", help="print the warehouse URL (starts the private cluster)").set_defaults(
        func=cmd_db_url
    )
    db.add_parser("migrate", help="apply migrations and load reference data (idempotent)").set_defaults(
        func=cmd_db_migrate
    )

    sub.add_parser(
        "check-deployment",
        help="refuse to start when a deployment secret is missing, a known default or guessable",
    ).set_defaults(func=cmd_check_deployment)

    run = sub.add_parser("run-round", help="run a round's steps in order (idempotent), as the DAG does")
    validate = sub.add_parser("validate", help="a round's steps up to finish_validation (nothing is merged)")
    publish = sub.add_parser(
        "publish", help="rank and audit a merged round's candidate, publish it (exit 3: blocked)"
    )
    for command, func in ((run, cmd_run_round), (validate, cmd_validate), (publish, cmd_publish)):
        command.add_argument("--round", required=True, help="round id, YYYY-Qn")
        command.add_argument("--landing-root", default=None, help="default: DTSEN_LANDING_ROOT")
        command.add_argument("--publish-root", default=None, help="default: DTSEN_PUBLISH_ROOT")
        command.add_argument(
            "--quality-gate", type=float, default=None, help="max share of failed rows (default: the setting)"
        )
        command.set_defaults(func=func)
    run.add_argument("--until", default=None, help="stop after this step (see `dtsen.round.STEPS`)")
    run.add_argument(
        "--dry-run", action="store_true", help="rehearse merge, ranking and audit, then roll them back"
    )
    for command in (run, publish):
        command.add_argument("--approve-drift", default=None, metavar="REASON", help="publish despite drift")
        command.add_argument("--by", default=None, help="who approves the drift (recorded; required with it)")

    approve = sub.add_parser("approve", help="let a candidate blocked by its audit be published")
    approve.add_argument("--version", type=int, required=True)
    approve.add_argument("--by", required=True, help="who approves (recorded)")
    approve.add_argument("--reason", required=True, help="why (recorded)")
    approve.set_defaults(func=cmd_approve)

    extract = sub.add_parser(
        "decide-extract", help="apply a held Dukcapil extract, or keep the current reference (recorded)"
    )
    extract.add_argument("--date", required=True, help="the extract's date folder, YYYY-MM-DD")
    choice = extract.add_mutually_exclusive_group(required=True)
    choice.add_argument("--apply", action="store_true", help="apply the extract as it is")
    choice.add_argument(
        "--keep-reference", action="store_true", help="set the extract aside; the reference stays as it is"
    )
    extract.add_argument("--by", required=True, help="who decides (recorded)")
    extract.add_argument("--reason", required=True, help="why (recorded)")
    extract.set_defaults(func=cmd_decide_extract)

    discard = sub.add_parser("discard", help="drop an unpublished candidate (e.g. after fixing the model)")
    discard.add_argument("--version", type=int, required=True)
    discard.add_argument("--by", required=True, help="who discards (recorded)")
    discard.add_argument("--reason", required=True, help="why (recorded)")
    discard.set_defaults(func=cmd_discard)

    sub.add_parser("versions", help="the versions, their status and which is current").set_defaults(
        func=cmd_versions
    )

    exp = sub.add_parser("explain", help="why a person is or is not a recipient of each program")
    exp.add_argument("--nik", required=True)
    exp.add_argument("--version", type=int, default=None, help="default: the current published version")
    exp.set_defaults(func=cmd_explain)

    from dtsen.api.cli import add_commands

    add_commands(sub)  # dtsen api, dtsen api-client ..., dtsen disclosures ...
    from dtsen.notify.cli import add_commands as add_notify_commands

    add_notify_commands(sub)  # dtsen notify-retry
    from dtsen.model.cli import add_commands as add_model_commands

    add_model_commands(sub)  # dtsen model list|show|adopt|fit
    from dtsen.cases.cli import add_commands as add_cases_commands

    add_cases_commands(sub)  # dtsen cases list|show|assign|expire
    return parser


# Exit codes (README, "Exit codes"): 2 is argparse's (bad usage); 3 and 4 are set by their commands.
EXIT_DATA_ERROR = 5


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, set up logging, run the chosen command (shared with `dtsen-dev`).

    A DataError means a person has to fix an input, a setting or the order of things: it ends as one
    line on stderr and exit 5, not a traceback. Anything else is a bug and keeps its traceback, with a
    database error in it named by its condition only (dtsen.errors.scrubbed: never its DETAIL line,
    which quotes the key)."""
    from dtsen.errors import DataError, scrubbed

    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return args.func(args)
    except DataError as exc:
        message = " ".join(str(exc).split()) or "no details"  # one line, whatever the message holds
        print(f"{parser.prog}: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return EXIT_DATA_ERROR
    except Exception as exc:  # noqa: BLE001 (re-raised, scrubbed)
        failure = scrubbed(exc)
    raise failure  # outside the handler: the original is not chained back onto it


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
