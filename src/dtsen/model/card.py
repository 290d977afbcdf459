"""A fitted model's card (publish.ranking_model_card): what it was fitted on, how well it targets
beside the model in use (cross-validated, on the same folds), and what adopting it would change.
Aggregates only: counts per province and regency, never a family."""

from __future__ import annotations

CUTOFFS = ("3", "4", "5")


def _errors_line(label: str, errors: dict | None) -> str:
    if not errors:
        return f"  {label:<10} -"
    cells = [
        f"desil 1-{c} incl {errors[c]['inclusion']:.3f} excl {errors[c]['exclusion']:.3f}"
        for c in CUTOFFS
        if c in errors
    ]
    spearman = errors.get("spearman")
    tail = f"  spearman {spearman:.3f}" if isinstance(spearman, int | float) else ""
    return f"  {label:<10} " + "  ".join(cells) + tail


def summary_lines(card: dict) -> list[str]:
    """What `dtsen model fit` and `dtsen model show` print of a card."""
    training = card.get("training", {})
    errors = card.get("errors", {})
    lines = [
        f"fitted on {training.get('families', 0)} measured families in {training.get('villages', 0)} villages, "
        f"surveys {training.get('from')} to {training.get('to')} (window {training.get('window_months')} months)",
        f"penalty: {card.get('penalty', {}).get('method', '-')} alpha {card.get('penalty', {}).get('alpha', '-')}, "
        f"regional terms: {', '.join(card.get('regions', [])) or 'none'}",
        f"cross-validated targeting errors ({card.get('cv', {}).get('folds', '-')} folds by village, "
        "national desil thresholds):",
        _errors_line("candidate", errors.get("candidate", {}).get("national")),
        _errors_line("current", errors.get("current", {}).get("national")),
    ]
    noise = card.get("cv", {}).get("survey_noise")
    if noise:
        told = (
            f" (survey noise sd {noise['sd']:.3f}, from {noise['families_measured_twice']} families measured twice)"
            if noise.get("sd") is not None
            else ""
        )
        lines.append(f"  judged against {noise['judged_against']}{told}")
    impact = card.get("impact", {})
    if impact:
        lines.append(
            f"adopting it would move {impact.get('entering', 0)} families into desil 1-5 and "
            f"{impact.get('leaving', 0)} out of it (of {impact.get('families', 0)}) in version {card.get('as_of_version')}"
        )
        for program, change in sorted(impact.get("programs", {}).items()):
            lines.append(f"  {program}: +{change.get('added', 0)} -{change.get('removed', 0)} recipients")
    return lines


def build_card(
    *,
    model_version: int,
    model,
    training: dict,
    penalty: dict,
    regions: list[str],
    errors: dict,
    impact: dict,
    current: tuple,
    as_of_version: int,
) -> dict:
    """The card as kept (publish.ranking_model_card.card) and shown (cockpit, `dtsen model show`)."""
    current_number, current_model = current
    return {
        "model_version": model_version,
        "name": model.name,
        "version": model.version,
        "sha256": model.sha256,
        "as_of_version": as_of_version,
        "training": training,
        "penalty": penalty,
        "regions": regions,
        "terms": model.document.get("terms", []),
        "intercept": model.document.get("intercept"),
        "errors": {"candidate": errors["candidate"], "current": errors["current"]},
        "cv": errors.get("cv", {}),
        "current_model": {
            "model_version": current_number,
            "name": current_model.name,
            "version": current_model.version,
            "sha256": current_model.sha256,
        },
        "impact": impact,
    }
