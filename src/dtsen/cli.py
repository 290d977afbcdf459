"""`dtsen` command line: warehouse management, the synthetic generator and the demo round."""

from __future__ import annotations

import argparse
import logging
import sys

from dtsen.config import settings
from dtsen.warehouse import engine, localpg
from dtsen.warehouse.migrate import migrate


def _configure_logging(verbose: bool) -> None:
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


def cmd_db_migrate(_: argparse.Namespace) -> int:
    with engine.connect() as conn:
        report = migrate(conn)
    print(
        f"migrations applied now: {len(report.applied)} {report.applied}; already applied: {len(report.already)}"
    )
    if report.reference_loaded:
        print(f"reference data loaded: {report.reference_rows}")
    else:
        print(f"reference data already current ({report.reference_rows.get('total', 0)} region codes)")
    return 0


def cmd_check_deployment(_: argparse.Namespace) -> int:
    import os

    from dtsen.deployment import check_deployment

    ok, lines = check_deployment(os.environ)
    print("\n".join(lines), file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def cmd_generate(args: argparse.Namespace) -> int:
    from dtsen.generate.__main__ import main as generate_main

    return generate_main(args.rest) or 0


def cmd_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dtsen.pipeline import format_validation, stage_and_validate

    summary = stage_and_validate(
        args.round,
        landing_root=Path(args.landing_root) if args.landing_root else None,
        publish_root=Path(args.publish_root) if args.publish_root else None,
        threshold=args.quality_gate,
    )
    print("\n".join(format_validation(summary)))
    return 0


def cmd_run_round(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dtsen.pipeline import format_merge, format_validation, validate_and_merge

    result = validate_and_merge(
        args.round,
        landing_root=Path(args.landing_root) if args.landing_root else None,
        publish_root=Path(args.publish_root) if args.publish_root else None,
        threshold=args.quality_gate,
    )
    print("\n".join(format_validation(result.validation) + format_merge(result.merge, args.round)))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dtsen.pipeline import format_publication, rank_audit_publish

    result = rank_audit_publish(
        args.round,
        publish_root=Path(args.publish_root) if args.publish_root else None,
        model_path=Path(args.model) if args.model else None,
        programs_path=Path(args.programs) if args.programs else None,
    )
    print("\n".join(format_publication(result)))
    return 0 if result.published else 3  # 3: blocked by the audit, awaiting approval


def cmd_approve(args: argparse.Namespace) -> int:
    from dtsen.publish.audit import approve_version
    from dtsen.warehouse import engine

    with engine.connect() as conn:
        approve_version(conn, args.version, args.by, args.reason)
    print(f"version {args.version} approved by {args.by}; run `dtsen publish --round ...` to publish it")
    return 0


def cmd_versions(_: argparse.Namespace) -> int:
    from dtsen.publish.version import unrecorded_warning

    with engine.connect() as conn:
        rows = conn.execute(
            "SELECT v.version, r.round_id, v.status, v.published_at, v.approved_by FROM publish.version v "
            "JOIN ingest.round r ON r.round_seq = v.round_seq ORDER BY v.version"
        ).fetchall()
        current = conn.execute("SELECT version FROM publish.current_version").fetchone()
        warning = unrecorded_warning(conn, settings().publish_root)
    for version, round_id, status, published_at, approved_by in rows:
        mark = " (current)" if current and version == current[0] else ""
        when = published_at.isoformat(timespec="seconds") if published_at else "-"
        approval = f", approved by {approved_by}" if approved_by else ""
        print(f"version {version:>4}  round {round_id}  {status:<10} published {when}{approval}{mark}")
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
        return 4
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from dtsen.config import settings
    from dtsen.programs import load_programs
    from dtsen.publish.explain import ExplainError, explain
    from dtsen.rank.model import load_model
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
                load_model(cfg.ranking_model_path),
                load_programs(cfg.programs_path),
            )
        except ExplainError as exc:
            print(str(exc), file=sys.stderr)
            return 1
    print("\n".join(lines))
    return 0


def cmd_rank_fit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dtsen.ingest.register import round_reference_date
    from dtsen.rank.fit import features_frame, fit_model, write_model
    from dtsen.warehouse import engine

    truth = Path(args.world) / "truth" / args.round
    with engine.connect() as conn:
        frame = features_frame(conn, truth, round_reference_date(args.round))
    document = fit_model(frame, name=args.name, version=args.version, source=args.source or str(truth))
    write_model(document, Path(args.out))
    print(
        f"fitted on {document['fitted_on']['families']} families, R^2 {document['fitted_on']['r2']}: {args.out}"
    )
    return 0


def cmd_airflow(args: argparse.Namespace) -> int:
    from dtsen.local_airflow import standalone

    return standalone(port=args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from dtsen.demo import run_demo

    return run_demo(landing_root=args.landing_root, via_airflow=not args.no_airflow)


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
        "check-deployment", help="refuse to start when a deployment secret is missing or a known default"
    ).set_defaults(func=cmd_check_deployment)

    gen = sub.add_parser(
        "generate", help="write a synthetic population and rounds (see --help)", add_help=False
    )
    gen.add_argument("rest", nargs=argparse.REMAINDER)
    gen.set_defaults(func=cmd_generate)

    for name, help_text, func in (
        ("validate", "discover, stage and validate a round; write feedback to regions", cmd_validate),
        ("run-round", "validate and merge a round into the registry", cmd_run_round),
    ):
        stage = sub.add_parser(name, help=help_text)
        stage.add_argument("--round", required=True, help="round id, YYYY-Qn")
        stage.add_argument("--landing-root", default=None, help="default: DTSEN_LANDING_ROOT")
        stage.add_argument("--publish-root", default=None, help="default: DTSEN_PUBLISH_ROOT")
        stage.add_argument(
            "--quality-gate", type=float, default=None, help="max share of failed rows (default 0.20)"
        )
        stage.set_defaults(func=func)

    pub = sub.add_parser("publish", help="rank a merged round, audit the candidate version, publish it")
    pub.add_argument("--round", required=True, help="round id, YYYY-Qn (merged)")
    pub.add_argument("--publish-root", default=None, help="default: DTSEN_PUBLISH_ROOT")
    pub.add_argument("--model", default=None, help="ranking model file (default: DTSEN_RANKING_MODEL)")
    pub.add_argument("--programs", default=None, help="program rules file (default: DTSEN_PROGRAMS)")
    pub.set_defaults(func=cmd_publish)

    approve = sub.add_parser("approve", help="let a candidate blocked by its audit be published")
    approve.add_argument("--version", type=int, required=True)
    approve.add_argument("--by", required=True, help="who approves (recorded)")
    approve.add_argument("--reason", required=True, help="why (recorded)")
    approve.set_defaults(func=cmd_approve)

    sub.add_parser("versions", help="the versions, their status and which is current").set_defaults(
        func=cmd_versions
    )

    exp = sub.add_parser("explain", help="why a person is or is not a recipient of each program")
    exp.add_argument("--nik", required=True)
    exp.add_argument("--version", type=int, default=None, help="default: the current published version")
    exp.set_defaults(func=cmd_explain)

    fit = sub.add_parser("rank-fit", help="fit the PMT model's coefficients on a generated world")
    fit.add_argument("--world", required=True, help="a `dtsen generate` output folder")
    fit.add_argument("--round", default="2026-Q1")
    fit.add_argument("--out", required=True)
    fit.add_argument("--name", default="dtsen-pmt")
    fit.add_argument("--version", default="1")
    fit.add_argument("--source", default=None, help="how the world was generated (recorded in the model)")
    fit.set_defaults(func=cmd_rank_fit)

    af = sub.add_parser(
        "airflow", help="start Airflow locally (standalone) with the project's DAGs and warehouse"
    )
    af.add_argument("--port", type=int, default=8080)
    af.set_defaults(func=cmd_airflow)

    demo = sub.add_parser("demo", help="the main job on the bundled sample data")
    demo.add_argument("--landing-root", default=None, help="default: DTSEN_LANDING_ROOT")
    demo.add_argument(
        "--no-airflow", action="store_true", help="run the rounds' steps directly, without Airflow"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
