"""The model cycle the CLI and the dtsen_ranking_model DAG share: fit a model from the measurements
and write its card (fit_model), put it to a person (ask_for_adoption), record the answer
(record_decision). Each call owns its transaction. scikit-learn is imported only when fitting, so
parsing the DAG stays light."""

from __future__ import annotations

import logging
import time

from dtsen.config import settings

log = logging.getLogger(__name__)

FIT_DOC = (
    "Fit a welfare model: ridge regression of log per-capita expenditure on the ranking's proxies and "
    "regional terms, from every family's latest BPS measurement in the window (its features as its "
    "round's version ranked it), penalty by cross-validation with folds by village; its targeting errors "
    "cross-validated beside the model in use, and what adopting it would change, go on its card. "
    "Fails without enough measurements (a data error: not retried)."
)
ADOPT_DOC = (
    "One of DTSEN_APPROVERS decides on the fitted model, its card as the body: **Approve** (a reason is "
    "required) ranks the next candidate with it, every family re-scored; **Reject**, or no answer in "
    "time, keeps the model in use. Every answer is recorded with who, when and why."
)


def _regions(raw: object) -> tuple[str, ...]:
    if raw is None or raw == "":
        return settings().model_regions
    if isinstance(raw, str):
        return tuple(r.strip() for r in raw.split(",") if r.strip())
    return tuple(raw)


def fit_model(
    *, months: int | None = None, folds: int | None = None, regions: object = None, by: str = "cli"
) -> dict:
    """Fit, cross-validate and register a model with its card; not adopted. A small summary: the
    model's number, checksum and counts (no personal data)."""
    from dtsen.model import store
    from dtsen.model.card import build_card
    from dtsen.model.design import design_for
    from dtsen.model.evaluate import evaluate
    from dtsen.model.fit import cross_validate, fit
    from dtsen.model.impact import impact
    from dtsen.model.training import summary, training_frame
    from dtsen.programs import load_programs
    from dtsen.rank.model import parse_model
    from dtsen.warehouse import engine

    cfg = settings()
    months = months or cfg.model_training_months
    folds = folds or cfg.model_cv_folds
    seconds: dict[str, float] = {}
    clock = time.monotonic()

    def done(part: str, what: str) -> None:
        nonlocal clock
        seconds[part] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()
        log.info("model fit: %s in %.1f s", what, seconds[part])

    with engine.connect() as conn, conn.transaction():
        current_number, current = store.current(conn, cfg.ranking_model_path)
        frame = training_frame(conn, current, months=months)
        done("training_frame", f"training frame of {len(frame)} measured families")
        design = design_for(current, frame, _regions(regions))
        final = fit(frame, design, folds=folds)
        done("fit", f"penalty search and fit over {design_width(final)} terms")
        cv = cross_validate(frame, design, folds=folds)
        done("cross_validate", f"nested cross-validation, {folds} folds by village")
        errors = evaluate(conn, frame, current, cv)
        done("evaluate", "targeting errors at the national thresholds")
        number = store.next_version(conn)
        training = summary(frame)
        document = final.document(frame, current, version=str(number), training=training)
        model = parse_model(document)
        registered = store.register(conn, document, "fit", by)
        as_of = frame.attrs["as_of_version"]
        changes = impact(conn, model, as_of, load_programs(cfg.programs_path))
        done("impact", f"what adopting it would change in version {as_of}")
        card = build_card(
            model_version=registered,
            model=model,
            training=training,
            penalty=final.penalty(),
            regions=list(design.regions),
            errors=errors,
            impact=changes,
            current=(current_number, current),
            as_of_version=as_of,
        )
        store.write_card(conn, registered, card, as_of, current_number)
    log.info("model %s fitted on %s families (%s)", registered, training["families"], model.sha256[:12])
    return {
        "model_version": registered,
        "sha256": model.sha256,
        "families": training["families"],
        "villages": training.get("villages"),
        "as_of_version": as_of,
        "entering": changes["entering"],
        "leaving": changes["leaving"],
        "seconds": seconds,
    }


def design_width(fitted) -> int:
    """How many coefficients the fitted ridge has (for the log)."""
    return int(fitted.pipeline.named_steps["ridge"].coef_.shape[0])


def ask_for_adoption(model_version: int, card_link: str) -> dict:
    """The subject and body (markdown: the card's summary, a link to its page) of the question."""
    from dtsen.model import store
    from dtsen.model.card import summary_lines
    from dtsen.warehouse import engine

    with engine.connect() as conn, conn.transaction():
        model = store.get(conn, model_version)
        card = store.card(conn, model_version) or {}
    lines = summary_lines(card) if card else ["(no card)"]
    body = "\n".join(
        [
            f"**Model {model_version}** ({model.name} v{model.version}, sha256 `{model.sha256[:16]}`)",
            "",
            "```",
        ]
        + lines
        + ["```", "", f"The whole card: {card_link}"]
    )
    return {"subject": f"Adopt ranking model {model_version}?", "markdown": body}


def record_decision(
    model_version: int,
    *,
    adopt: bool,
    decided_by: str | None,
    reason: str | None,
    timed_out: bool,
    dag_run_id: str | None,
) -> dict:
    """A person's answer through Airflow (only DTSEN_APPROVERS may adopt, with a reason)."""
    from dtsen.model import adopt as adoption
    from dtsen.warehouse import engine

    with engine.connect() as conn, conn.transaction():
        outcome = adoption.record(
            conn,
            model_version,
            adopt=adopt,
            decided_by=decided_by,
            reason=reason,
            channel="airflow-ui",
            approvers=settings().approvers,
            timed_out=timed_out,
            dag_run_id=dag_run_id,
        )
        refused = conn.execute(
            "SELECT refused_because FROM publish.ranking_model_decision ORDER BY decision_pk DESC LIMIT 1"
        ).fetchone()[0]
    return {"model_version": model_version, "outcome": outcome, "refused_because": refused}
