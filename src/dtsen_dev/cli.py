"""`dtsen-dev` command line: development tooling (not in the image). The generator, fitting the
ranking model on a generated world, the main job on the bundled sample, Airflow on this machine."""

from __future__ import annotations

import argparse
import sys

from dtsen.cli import run_command


def cmd_generate(args: argparse.Namespace) -> int:
    from dtsen_dev.generate.__main__ import main as generate_main

    return generate_main(args.rest) or 0


def cmd_rank_fit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dtsen.ingest.register import round_reference_date
    from dtsen.warehouse import engine
    from dtsen_dev.rank_fit import features_frame, fit_model, write_model

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
    from dtsen_dev.local_airflow import standalone

    return standalone(port=args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from dtsen_dev.demo import run_demo

    return run_demo(landing_root=args.landing_root, via_airflow=not args.no_airflow)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dtsen-dev", description="DTSEN development tooling")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate",
        help="write a synthetic population and rounds (see --help)",
        add_help=False,
        # every argument, --help included, is the generator's own (its parser reads them): with "-" as
        # a prefix here, argparse would take them for unknown options of this parser and refuse them
        prefix_chars="+",
    )
    gen.add_argument("rest", nargs=argparse.REMAINDER)
    gen.set_defaults(func=cmd_generate)

    fit = sub.add_parser("rank-fit", help="fit the PMT model's coefficients on a generated world")
    fit.add_argument("--world", required=True, help="a `dtsen-dev generate` output folder")
    fit.add_argument("--round", default="2026-Q1")
    fit.add_argument("--out", required=True)
    fit.add_argument("--name", default="dtsen-pmt")
    fit.add_argument("--version", default="1")
    fit.add_argument("--source", default=None, help="how the world was generated (recorded in the model)")
    fit.set_defaults(func=cmd_rank_fit)

    af = sub.add_parser(
        "airflow", help="start Airflow locally (standalone) with the project's DAGs and warehouse"
    )
    af.add_argument(
        "--port", type=int, default=8080, help="the UI's port (also its links in emails and the tasks' API)"
    )
    af.set_defaults(func=cmd_airflow)

    demo = sub.add_parser("demo", help="the main job on the bundled sample data")
    demo.add_argument("--landing-root", default=None, help="default: DTSEN_LANDING_ROOT")
    demo.add_argument(
        "--no-airflow", action="store_true", help="run the rounds' steps directly, without Airflow"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
