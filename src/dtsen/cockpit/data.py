"""What the cockpit shows, read from the warehouse in read-only sessions: aggregates only.

Every function returns plain dicts and lists (JSON-able): the HTML pages and the JSON API render the
same values. Nothing here reads the registry: rounds come from the submissions' kept ringkasan, versions
from what their build and audit kept, differences from the per-regency recipient counts and the spans
opened and closed between two versions (sql/cockpit/cockpit.sql, sql/publish/audit.sql `drift`),
ranking models from publish.ranking_model, the card kept with a fitted one (counts per province and
regency, errors over measured families) and the decisions on them, verification cases counted per
regency, origin and round (cases.*, never a family's key).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row

from dtsen.report import DUPLICATE, submission_outcome
from dtsen.sqlfiles import statements

TOP_REASONS = 3


class NotFound(LookupError):
    """The round, submission or version asked for does not exist."""


@contextlib.contextmanager
def reading() -> Iterator[psycopg.Connection]:
    """A read-only session on the warehouse with the cockpit's login (DTSEN_COCKPIT_DATABASE_URL, a login
    of the dtsen_cockpit role; else the warehouse's own)."""
    from dtsen.warehouse import engine

    with psycopg.connect(
        engine.libpq_conninfo(engine.database_url("cockpit")),
        application_name="dtsen-cockpit",
        options="-c default_transaction_read_only=on -c statement_timeout=30000",
        row_factory=dict_row,
        autocommit=True,
    ) as conn:
        yield conn


def _sql() -> dict[str, str]:
    return statements("cockpit/cockpit.sql")


def _rows(conn: psycopg.Connection, name: str, params: dict | None = None) -> list[dict]:
    return conn.execute(_sql()[name], params or {}).fetchall()


def _share(part: int | None, whole: int | None) -> float | None:
    return round(part / whole, 4) if part is not None and whole else None


def _top(reasons: dict[str, int], n: int = TOP_REASONS) -> list[list]:
    return [[code, count] for code, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _submissions(
    conn: psycopg.Connection, round_id: str | None = None, kode: str | None = None
) -> list[dict]:
    """Submissions with their outcome (dtsen.report.submission_outcome, the words `dtsen report` uses
    and ringkasan.json told the region) and whether each is an identical resubmission."""
    out = []
    for s in _rows(conn, "submissions", {"round_id": round_id, "kode": kode}):
        reasons = {k: int(v) for k, v in (s["reasons"] or {}).items()}
        out.append(
            {
                "round_id": s["round_id"],
                "source": s["source"],
                "kode_wilayah": s["kode_wilayah"],
                "nama_wilayah": s["nama_wilayah"],
                "submission_id": s["submission_id"],
                "status": submission_outcome(s["status"], s["rejected"]),
                "reason_code": s["reason_code"],
                "duplicate": s["reason_code"] == DUPLICATE or s["duplicate_of"] is not None,
                "duplicate_of": s["duplicate_of"],
                "duplicate_of_round": s["duplicate_of_round"],
                "has_ringkasan": s["has_ringkasan"],
                "received": s["received"],
                "merged": s["merged"],
                "rejected": s["rejected"],
                "rejected_share": _share(s["rejected"], s["received"]),
                "top_reasons": _top(reasons),
                "reasons": reasons,
            }
        )
    return out


def _duplicate(s: dict) -> dict:
    """An identical resubmission: its rows were processed (and counted) under the submission it repeats,
    so it is shown apart and none of its rows count as received or rejected again."""
    keys = ("round_id", "source", "kode_wilayah", "nama_wilayah", "submission_id", "duplicate_of")
    return {k: s[k] for k in keys} | {
        "duplicate_of_round": s["duplicate_of_round"],
        "rows": s["received"],
        "has_ringkasan": s["has_ringkasan"],
    }


def _totals(submissions: list[dict]) -> dict:
    """Submissions by outcome and the rows they brought; identical resubmissions counted apart."""
    counted = [s for s in submissions if not s["duplicate"]]
    totals = {
        "submissions": len(counted),
        "merged_submissions": sum(s["status"] == "MERGED" for s in counted),
        "partial_submissions": sum(s["status"] == "PARTIAL" for s in counted),
        "rejected_submissions": sum(s["status"] == "REJECTED" for s in counted),
        "duplicate_submissions": len(submissions) - len(counted),
        "rows_received": sum(int(s["received"] or 0) for s in counted),
        "rows_merged": sum(int(s["merged"] or 0) for s in counted),
        "rows_rejected": sum(int(s["rejected"] or 0) for s in counted),
    }
    return totals | {"rejected_share": _share(totals["rows_rejected"], totals["rows_received"])}


def rounds(conn: psycopg.Connection) -> list[dict]:
    by_round: dict[str, list[dict]] = {}
    for s in _submissions(conn):
        by_round.setdefault(s["round_id"], []).append(s)
    out = []
    for r in _rows(conn, "rounds"):
        out.append(
            r
            | _totals(by_round.get(r["round_id"], []))
            | {
                "created_at": r["created_at"].isoformat(timespec="seconds"),
                "merged_at": r["merged_at"].isoformat(timespec="seconds") if r["merged_at"] else None,
            }
        )
    return out


def round_detail(conn: psycopg.Connection, round_id: str) -> dict:
    found = [r for r in _rows(conn, "rounds") if r["round_id"] == round_id]
    if not found:
        raise NotFound(f"no round {round_id}")
    everything = _submissions(conn, round_id=round_id)
    submissions = [s for s in everything if not s["duplicate"]]
    duplicates = [_duplicate(s) for s in everything if s["duplicate"]]
    sources = []
    for source in sorted({s["source"] for s in everything}):
        mine = [s for s in everything if s["source"] == source]
        totals = _totals(mine)
        sources.append(
            {
                "source": source,
                "submissions": totals["submissions"],
                "duplicate_submissions": totals["duplicate_submissions"],
                "received": totals["rows_received"],
                "merged": totals["rows_merged"],
                "rejected": totals["rows_rejected"],
                "rejected_share": totals["rejected_share"],
            }
        )
    reasons_total: dict[str, int] = {}
    for item in submissions:
        for code, count in item["reasons"].items():
            reasons_total[code] = reasons_total.get(code, 0) + count
    r = found[0]
    return {
        "round": r
        | _totals(everything)
        | {
            "created_at": r["created_at"].isoformat(timespec="seconds"),
            "merged_at": r["merged_at"].isoformat(timespec="seconds") if r["merged_at"] else None,
        },
        "sources": sources,
        "submissions": submissions,
        "duplicates": duplicates,
        "refused": _rows(conn, "refused_entries", {"round_id": round_id}),
        "top_reasons": _top(reasons_total, 10),
    }


def region_trend(conn: psycopg.Connection, kode: str) -> dict:
    """A region's pemda submissions over the rounds, counted as the round page counts them."""
    everything = _submissions(conn, kode=kode)
    keys = ("round_id", "submission_id", "status", "received", "merged", "rejected", "rejected_share")
    points = [
        {k: s[k] for k in keys} | {"top_reasons": s["top_reasons"]} for s in everything if not s["duplicate"]
    ]
    names = _rows(conn, "regency_names", {"codes": [kode]})
    if not everything and not names:
        raise NotFound(f"no region {kode}")
    return {
        "kode_wilayah": kode,
        "nama_wilayah": names[0]["nama"] if names else None,
        "rounds": points,
        "duplicates": [_duplicate(s) for s in everything if s["duplicate"]],
    }


def ringkasan(conn: psycopg.Connection, round_id: str, submission_id: str) -> dict:
    found = _rows(conn, "ringkasan", {"round_id": round_id, "submission_id": submission_id})
    if not found:
        raise NotFound(f"no ringkasan.json for {submission_id} in round {round_id}")
    return found[0]["ringkasan"]


def _programs(programs: dict | None) -> list[dict]:
    return [{"program": name} | values for name, values in sorted((programs or {}).items())]


def versions(conn: psycopg.Connection) -> list[dict]:
    out = []
    for v in _rows(conn, "versions"):
        counts = v["counts"] or {}
        out.append(
            {
                "version": v["version"],
                "round_id": v["round_id"],
                "status": v["status"],
                "is_current": bool(v["is_current"]),
                "previous_version": v["previous_version"],
                "created_at": v["created_at"].isoformat(timespec="seconds"),
                "published_at": v["published_at"].isoformat(timespec="seconds")
                if v["published_at"]
                else None,
                "individuals": counts.get("individuals"),
                "families": counts.get("families"),
                "programs": _programs(v["programs"]),
                "audit_passed": v["audit_passed"],
                "approved_by": v["approved_by"],
            }
        )
    return out


def drift(conn: psycopg.Connection, a: int, b: int, min_base: int) -> list[dict]:
    """Per program and regency: recipients in version a and b, and the persons added and removed
    between them (the audit's own drift query, over the spans opened and closed in between)."""
    if a > b:
        a, b = b, a
    # a version against its predecessor: what its audit kept; any other pair is counted now (seconds
    # at national scale: the spans opened and closed in between)
    stored = conn.execute(
        "SELECT program, kode_kabupaten, sebelumnya, ditambah, dikeluarkan FROM publish.recipient_drift "
        "WHERE version = %s AND previous_version = %s",
        (b, a),
    ).fetchall()
    if stored:
        rows = [
            r
            | {
                "added_share": r["ditambah"] / max(r["sebelumnya"], min_base, 1),
                "removed_share": r["dikeluarkan"] / max(r["sebelumnya"], min_base, 1),
            }
            for r in stored
        ]
    else:
        rows = conn.execute(
            statements("publish/audit.sql")["drift"], {"previous": a, "version": b, "min_base": min_base}
        ).fetchall()
    moved = {(r["program"], r["kode_kabupaten"]): r for r in rows}
    counts = {
        (r["program"], r["kode_kabupaten"]): r for r in _rows(conn, "recipient_counts", {"a": a, "b": b})
    }
    keys = sorted(set(moved) | set(counts))
    names = {
        r["kode"]: r["nama"] for r in _rows(conn, "regency_names", {"codes": sorted({k for _, k in keys})})
    }
    rows = []
    for program, kab in keys:
        m, c = moved.get((program, kab), {}), counts.get((program, kab), {})
        rows.append(
            {
                "program": program,
                "kode_kabupaten": kab,
                "nama_kabupaten": names.get(kab),
                "recipients_a": int(c.get("a") or 0),
                "recipients_b": int(c.get("b") or 0),
                "added": int(m.get("ditambah") or 0),
                "removed": int(m.get("dikeluarkan") or 0),
                "added_share": round(float(m.get("added_share") or 0), 4),
                "removed_share": round(float(m.get("removed_share") or 0), 4),
            }
        )
    return rows


def _integrity(audit: dict, manifest: dict) -> list[dict]:
    """A version's integrity warnings in words: each implausible-recipient rule by what it means (its
    description in config/integrity.json, as the audit or the manifest kept it) and each split surge,
    with families and where. A version audited before the integrity section: its stored sentences."""
    from dtsen.integrity.config import load_integrity

    section = audit.get("integrity") or manifest.get("integrity")
    if not section:
        return [{"kind": "warning", "what": w.removeprefix("integrity: ")} for w in audit.get("warnings", [])]
    config = load_integrity()
    described = {r.id: r.description for r in config.implausible}
    out = []
    for rule, entry in sorted(section.get("implausible", {}).items()):
        if not entry.get("families"):
            continue
        description = entry.get("description")
        out.append(
            {
                "kind": "implausible",
                "rule": rule,
                "what": description if description and description != rule else described.get(rule, rule),
                "families": int(entry["families"]),
                "where": ", ".join(f"{k} ({n:,})" for k, n in sorted(entry.get("per_kabupaten", {}).items())),
            }
        )
    small = config.splits.small_family_max_members
    for flag in section.get("splits", {}).get("flags", []):
        where = "village" if flag["scope"] == "DESA" else "account"
        what = (
            "new families split off an existing family"
            if flag["metric"] == "split"
            else f"new families of at most {small} members"
        )
        out.append(
            {
                "kind": "split",
                "rule": flag["metric"],
                "what": f"{what}, far above its peers and its own history: field verification requested",
                "families": int(flag["families"]),
                "where": f"{where} {flag['key']} (regency {flag['kode_kabupaten']})",
            }
        )
    return out


def version_detail(conn: psycopg.Connection, version: int) -> dict:
    from dtsen.publish.approval import blocked_candidate

    found = _rows(conn, "version", {"version": version})
    if not found:
        raise NotFound(f"no version {version}")
    v = found[0]
    audit: dict[str, Any] = v["audit"] or {}
    counts = v["counts"] or {}
    thresholds = audit.get("thresholds", {})
    previous = v["previous_version"]
    flagged = {(d["program"], d["kode_kabupaten"]) for d in audit.get("drift_flagged", [])}
    # the page's one drift table: the pairs beyond the threshold first
    drift_rows = sorted(
        (
            r | {"flagged": (r["program"], r["kode_kabupaten"]) in flagged}
            for r in drift(conn, previous, version, int(thresholds.get("drift_min_base", 50)))
        )
        if previous
        else [],
        key=lambda r: not r["flagged"],
    )
    manifest = v["manifest"] or {}
    blocked = blocked_candidate(conn, version)
    return {
        "version": v["version"],
        "round_id": v["round_id"],
        "status": v["status"],
        "is_current": bool(v["is_current"]),
        "previous_version": previous,
        "created_at": v["created_at"].isoformat(timespec="seconds"),
        "published_at": v["published_at"].isoformat(timespec="seconds") if v["published_at"] else None,
        "individuals": counts.get("individuals"),
        "families": counts.get("families"),
        "desil": [
            {"desil": int(d), "families": c.get("families"), "individuals": c.get("individuals")}
            for d, c in sorted((counts.get("desil") or {}).items(), key=lambda kv: int(kv[0]))
        ],
        "programs": _programs(v["programs"]),
        "audit": {
            "success": audit.get("success"),
            "checks": audit.get("checks", []),
            "thresholds": thresholds,
            "drift_flagged": audit.get("drift_flagged", []),
            "integrity": _integrity(audit, v["manifest"] or {}),  # warnings: shown, never blocking
        },
        "drift": drift_rows,
        "approval": {
            "approved_by": v["approved_by"],
            "approved_at": v["approved_at"].isoformat(timespec="seconds") if v["approved_at"] else None,
            "reason": v["approval_reason"],
            "decisions": [
                d | {"decided_at": d["decided_at"].isoformat(timespec="seconds")}
                for d in _rows(conn, "decisions", {"version": version})
            ],
        },
        "files": [
            {"name": name, "sha256": sha} for name, sha in sorted((manifest.get("files") or {}).items())
        ],
        "build": {
            "mode": (v["build"] or {}).get("mode"),
            "why_whole": (v["build"] or {}).get("why_whole"),
            "rows": (v["build"] or {}).get("rows", {}),
            "families_rescored": (v["build"] or {}).get("families_rescored"),
        },
        "blocked": None
        if blocked is None
        else {
            "approvable": blocked.approvable,
            "failed_checks": blocked.failed_checks,
            "drifted": len(blocked.drift_flagged),  # their numbers: the drift table, flagged
            # what approving means, less the drift lines: the page shows each drift once, in its table
            "accepting": dataclasses.replace(blocked, drift_flagged=[]).accepting(),
        },
    }


def compare(conn: psycopg.Connection, a: int, b: int) -> dict:
    for v in (a, b):
        if not _rows(conn, "version", {"version": v}):
            raise NotFound(f"no version {v}")
    rows = drift(conn, a, b, 0)
    programs: dict[str, dict] = {}
    for r in rows:
        p = programs.setdefault(
            r["program"],
            {"program": r["program"], "recipients_a": 0, "recipients_b": 0, "added": 0, "removed": 0},
        )
        for key in ("recipients_a", "recipients_b", "added", "removed"):
            p[key] += r[key]
    return {
        "a": min(a, b),
        "b": max(a, b),
        "programs": sorted(programs.values(), key=lambda p: p["program"]),
        "regencies": rows,
    }


# -- ranking models (issue 25): publish.ranking_model, its card and the decisions on it ----------------

CUTOFFS = ("3", "4", "5")  # desil 1-3, 1-4, 1-5: the cutoffs a card's errors are measured at
LIST_CUTOFF = "5"  # the models list shows the errors at desil 1-5; a model's page at every cutoff


def _when(value) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _model_decisions(conn: psycopg.Connection, model_version: int | None) -> list[dict]:
    return [
        d | {"decided_at": _when(d["decided_at"])}
        for d in _rows(conn, "model_decisions", {"model_version": model_version})
    ]


def _errors_at(errors: dict | None, cutoffs=CUTOFFS) -> dict:
    """{cutoff: {"inclusion", "exclusion"}} of one model's errors block (national or a province's)."""
    errors = errors or {}
    return {
        c: {"inclusion": errors[c].get("inclusion"), "exclusion": errors[c].get("exclusion")}
        for c in cutoffs
        if isinstance(errors.get(c), dict)
    }


def _model_row(m: dict, decisions: list[dict]) -> dict:
    card = m["card"] or {}
    errors = card.get("errors") or {}
    return {
        "model_version": m["model_version"],
        "name": m["name"],
        "version": m["version"],
        "source": m["source"],
        "sha256": m["sha256"],
        "created_by": m["created_by"],
        "created_at": _when(m["created_at"]),
        "in_use": bool(m["in_use"]),
        "has_card": m["card"] is not None,
        "as_of_version": m["as_of_version"],
        "compared_with": m["compared_with"],
        # cross-validated national errors, the candidate beside the model in use when it was fitted
        "cv": None
        if not errors
        else {
            model: _errors_at((errors.get(model) or {}).get("national")) for model in ("candidate", "current")
        },
        "decisions": [d for d in decisions if d["model_version"] == m["model_version"]],
    }


def models(conn: psycopg.Connection) -> list[dict]:
    """Every ranking model, newest first: number, name and version, source, who registered it and when,
    its cross-validated errors beside the model it was compared with, the decisions on it, and whether
    it is the one in use."""
    decisions = _model_decisions(conn, None)
    return [_model_row(m, decisions) for m in _rows(conn, "models", {"model_version": None})]


def _error_rows(errors: dict, provinces: dict[str, str]) -> list[dict]:
    """The card's errors as rows: national first, then each province; each with both models' inclusion
    and exclusion at desil 1-3/1-4/1-5, their Spearman and the measured families they are over."""
    candidate, current = errors.get("candidate") or {}, errors.get("current") or {}

    def row(scope: str, kode: str | None, a: dict | None, b: dict | None) -> dict:
        a, b = a or {}, b or {}
        at_a, at_b = _errors_at(a), _errors_at(b)
        return {
            "scope": scope,
            "kode": kode,
            "nama": provinces.get(kode) if kode else None,
            "n": a.get("n", b.get("n")),
            "spearman": {"candidate": a.get("spearman"), "current": b.get("spearman")},
            "desil": [
                {"cutoff": c, "candidate": at_a.get(c, {}), "current": at_b.get(c, {})} for c in CUTOFFS
            ],
        }

    rows = [row("national", None, candidate.get("national"), current.get("national"))]
    per_a, per_b = candidate.get("per_province") or {}, current.get("per_province") or {}
    for kode in sorted(set(per_a) | set(per_b)):
        rows.append(row("province", kode, per_a.get(kode), per_b.get(kode)))
    return rows


def _terms(terms: list[dict], intercept) -> dict:
    """The model's terms, its proxies apart from its regional terms; a category term by its codes."""

    def shown(t: dict) -> dict:
        out = {
            "feature": t.get("feature"),
            "type": t.get("type"),
            "mean_contribution": t.get("mean_contribution"),
        }
        if isinstance(t.get("coefficients"), dict):
            out["coefficients"] = [[code, c] for code, c in sorted(t["coefficients"].items())]
        else:
            out["coefficient"] = t.get("coefficient")
            out["default"] = t.get("default")
        return out

    regional = [t.get("group") == "region" for t in terms]  # as dtsen.model.design marks a regional term
    return {
        "intercept": intercept,
        "proxies": [shown(t) for t, r in zip(terms, regional, strict=True) if not r],
        "regional": [shown(t) for t, r in zip(terms, regional, strict=True) if r],
    }


def model_detail(conn: psycopg.Connection, model_version: int) -> dict:
    """One model and its card: the data it was fitted on (window, families per province), its penalty,
    terms and coefficients, its cross-validated errors beside the model in use nationally and per
    province, what adopting it would change per regency and per program, and the decisions on it."""
    found = _rows(conn, "models", {"model_version": model_version})
    if not found:
        raise NotFound(f"no ranking model {model_version}")
    m = found[0]
    card: dict[str, Any] = m["card"] or {}
    document = _rows(conn, "model_document", {"model_version": model_version})[0]
    training = card.get("training") or {}
    errors = card.get("errors") or {}
    per_province = training.get("families_per_province") or {}
    codes = sorted(
        set(per_province)
        | {k for side in errors.values() if isinstance(side, dict) for k in side.get("per_province") or {}}
    )
    provinces = {r["kode"]: r["nama"] for r in _rows(conn, "province_names", {"codes": codes})}
    impact = card.get("impact") or {}
    return _model_row(m, _model_decisions(conn, model_version)) | {
        "card": None
        if not card
        else {
            "as_of_version": card.get("as_of_version", m["as_of_version"]),
            "training": {
                "window_months": training.get("window_months", training.get("window")),
                "from": training.get("from"),
                "to": training.get("to"),
                "families": training.get("families"),
                "villages": training.get("villages"),
                "families_per_province": [
                    {"kode": k, "nama": provinces.get(k), "families": n}
                    for k, n in sorted(per_province.items())
                ],
            },
            "penalty": card.get("penalty") or {},
            "regions": card.get("regions") or [],
            "cv": card.get("cv") or {},
            "current_model": card.get("current_model"),
            "errors": _error_rows(errors, provinces),
            "impact": {
                "version": impact.get("version", card.get("as_of_version")),
                "families": impact.get("families"),
                "entering": impact.get("entering"),
                "leaving": impact.get("leaving"),
                "regencies": sorted(impact.get("regencies") or [], key=lambda r: str(r.get("regency"))),
                "programs": _programs(impact.get("programs")),
            },
        },
        "terms": _terms(document["terms"] or [], document["intercept"]),
    }


def cases(conn: psycopg.Connection, today) -> dict:
    """Verification cases for oversight: per regency (live by state, overdue, expired, resolved, age),
    per origin (with the share of closed cases a visit upheld: the rule's precision) and per round
    (opened, and how the cases it closed ended). Counts only."""
    regions = _rows(conn, "cases_by_region", {"today": today})
    names = dict(
        (r["kode"], r["nama"]) for r in _rows(conn, "regency_names", {"codes": [x["kode"] for x in regions]})
    )
    for r in regions:
        r["nama"] = names.get(r["kode"])
        live = r["open"] + r["assigned"] + r["visited"]
        r["overdue_share"] = _share(r["overdue"] + r["expired"], live + r["expired"] + r["resolved"])
    origins = _rows(conn, "cases_by_origin")
    for o in origins:
        o["upheld_share"] = _share(o["upheld"], o["resolved"])
    return {
        "today": today.isoformat(),
        "regions": regions,
        "origins": origins,
        "rounds": _rows(conn, "cases_by_round"),
    }
