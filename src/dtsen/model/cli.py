"""`dtsen model ...` (added to the `dtsen` command): the ranking models in the warehouse, fitting a
new one from the BPS measurements, and adopting one (a person's decision, recorded)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dtsen.errors import DataError


def cmd_model_fit(args: argparse.Namespace) -> int:
    from dtsen.model import cycle, store
    from dtsen.model.card import summary_lines
    from dtsen.warehouse import engine

    fitted = cycle.fit_model(months=args.months, folds=args.folds, regions=args.regions, by=args.by)
    with engine.connect() as conn:
        card = store.card(conn, fitted["model_version"]) or {}
    print("\n".join(summary_lines(card)))
    print(
        f"model {fitted['model_version']} (sha256 {fitted['sha256'][:12]}), not adopted: "
        f"`dtsen model adopt --version {fitted['model_version']} --by NAME --reason TEXT` to rank with it"
    )
    return 0


def cmd_model_list(_: argparse.Namespace) -> int:
    from dtsen.model import store
    from dtsen.warehouse import engine

    with engine.connect() as conn:
        models = store.listed(conn)
    for m in models:
        errors = m["cv_errors"] or {}
        five = errors.get("5") if isinstance(errors, dict) else None
        cv = f"cv incl/excl at desil 5 {five['inclusion']:.3f}/{five['exclusion']:.3f}" if five else "no card"
        use = "IN USE" if m["in_use"] else ""
        print(
            f"model {m['model_version']:>3}  {m['name']} v{m['version']}  {m['source']:<4}  by {m['created_by']}  "
            f"{m['created_at']:%Y-%m-%d %H:%M}  {m['sha256'][:12]}  {cv}  {use}".rstrip()
        )
    return 0


def cmd_model_show(args: argparse.Namespace) -> int:
    from dtsen.model import store
    from dtsen.model.card import summary_lines
    from dtsen.warehouse import engine

    with engine.connect() as conn:
        if args.version is None:
            current = store.adopted(conn)
            if current is None:
                raise DataError(
                    "no model is adopted yet: the first candidate adopts the configured model file"
                )
            number = current[0]
        else:
            number = args.version
        model = store.get(conn, number)
        card = conn.execute(
            "SELECT card FROM publish.ranking_model_card WHERE model_version = %s", (number,)
        ).fetchone()
    print(f"model {number}: {model.name} v{model.version}, sha256 {model.sha256}")
    if card:
        print("\n".join(summary_lines(card[0])))
    else:
        print("no card (a model file, not fitted here)")
    if args.json:
        print(json.dumps(model.document, indent=1, sort_keys=True))
    return 0


def cmd_model_adopt(args: argparse.Namespace) -> int:
    from dtsen.model import adopt, store
    from dtsen.rank.model import load_model
    from dtsen.warehouse import engine

    with engine.connect() as conn, conn.transaction():
        if args.file:
            number = store.register(conn, load_model(Path(args.file)).document, "file", args.by)
        else:
            number = args.version
        adopt.adopt_from_cli(conn, number, args.by, args.reason)
    print(
        f"model {number} adopted by {args.by}: the next candidate is ranked with it (every family re-scored); "
        "a candidate waiting for approval keeps the model it was built with (`dtsen discard` to rebuild it)"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser(
        "model", help="the ranking models: list, show, fit from the BPS measurements, adopt"
    )
    actions = model.add_subparsers(dest="model_action", required=True)
    fit = actions.add_parser(
        "fit", help="fit a model from the BPS measurements, with its card (cross-validated errors, impact)"
    )
    fit.add_argument("--months", type=int, help="measurement window (default: DTSEN_MODEL_TRAINING_MONTHS)")
    fit.add_argument("--folds", type=int, help="cross-validation folds (default: DTSEN_MODEL_CV_FOLDS)")
    fit.add_argument("--regions", help="regional terms, e.g. province,urban (default: DTSEN_MODEL_REGIONS)")
    fit.add_argument("--by", default="cli", help="who fits it (recorded with the model)")
    fit.set_defaults(func=cmd_model_fit)
    actions.add_parser(
        "list", help="every model, its cross-validated errors and which is in use"
    ).set_defaults(func=cmd_model_list)
    show = actions.add_parser("show", help="a model's terms and card (default: the one in use)")
    show.add_argument("--version", type=int, help="the model's number (`dtsen model list`)")
    show.add_argument("--json", action="store_true", help="also print the model document")
    show.set_defaults(func=cmd_model_show)
    adopt = actions.add_parser(
        "adopt", help="rank the next candidate with this model (recorded: who, when, why)"
    )
    which = adopt.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=int, help="the model's number (`dtsen model list`)")
    which.add_argument("--file", help="a model file (registered, then adopted)")
    adopt.add_argument("--by", required=True, help="who decides")
    adopt.add_argument("--reason", required=True, help="why (recorded with the decision)")
    adopt.set_defaults(func=cmd_model_adopt)
