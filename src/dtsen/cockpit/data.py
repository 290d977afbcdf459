"""What the cockpit shows, read from the warehouse in read-only sessions: aggregates only.

Every function returns plain dicts and lists (JSON-able): the HTML pages and the JSON API render the
same values. Nothing here reads the registry: rounds come from the submissions' kept ringkasan, versions
from what their build and audit kept, differences from the per-regency recipient counts and the spans
opened and closed between two versions (sql/cockpit/cockpit.sql, sql/publish/audit.sql `drift`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row

from dtsen.config import settings
from dtsen.sqlfiles import statements

TOP_REASONS = 3


class NotFound(LookupError):
    """The round, submission or version asked for does not exist."""


@contextlib.contextmanager
def reading() -> Iterator[psycopg.Connection]:
    """A read-only session on the warehouse (DTSEN_COCKPIT_DATABASE_URL, else the warehouse's own)."""
    from dtsen.warehouse import engine

    url = settings().cockpit_database_url or engine.database_url()
    with psycopg.connect(
        engine.libpq_conninfo(url),
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


def rounds(conn: psycopg.Connection) -> list[dict]:
    out = []
    for r in _rows(conn, "rounds"):
        out.append(
            r
            | {
                "created_at": r["created_at"].isoformat(timespec="seconds"),
                "merged_at": r["merged_at"].isoformat(timespec="seconds") if r["merged_at"] else None,
                "rejected_share": _share(r["rows_rejected"], r["rows_received"]),
            }
        )
    return out


def round_detail(conn: psycopg.Connection, round_id: str) -> dict:
    found = [r for r in rounds(conn) if r["round_id"] == round_id]
    if not found:
        raise NotFound(f"no round {round_id}")
    submissions, sources = [], {}
    for s in _rows(conn, "round_submissions", {"round_id": round_id}):
        reasons = {k: int(v) for k, v in (s["reasons"] or {}).items()}
        item = {
            "source": s["source"],
            "kode_wilayah": s["kode_wilayah"],
            "nama_wilayah": s["nama_wilayah"],
            "submission_id": s["submission_id"],
            "status": s["status"],
            "reason_code": s["reason_code"],
            "has_ringkasan": s["has_ringkasan"],
            "received": s["received"],
            "merged": s["merged"],
            "rejected": s["rejected"],
            "rejected_share": _share(s["rejected"], s["received"]),
            "top_reasons": _top(reasons),
            "reasons": reasons,
        }
        submissions.append(item)
        total = sources.setdefault(
            s["source"], {"source": s["source"], "submissions": 0, "received": 0, "merged": 0, "rejected": 0}
        )
        total["submissions"] += 1
        for key in ("received", "merged", "rejected"):
            total[key] += int(item[key] or 0)
    reasons_total: dict[str, int] = {}
    for item in submissions:
        for code, count in item["reasons"].items():
            reasons_total[code] = reasons_total.get(code, 0) + count
    for total in sources.values():
        total["rejected_share"] = _share(total["rejected"], total["received"])
    return {
        "round": found[0],
        "sources": sorted(sources.values(), key=lambda t: t["source"]),
        "submissions": submissions,
        "top_reasons": _top(reasons_total, 10),
    }


def region_trend(conn: psycopg.Connection, kode: str) -> dict:
    points = []
    for r in _rows(conn, "region_trend", {"kode": kode}):
        points.append(
            {
                "round_id": r["round_id"],
                "submission_id": r["submission_id"],
                "status": r["status"],
                "received": r["received"],
                "merged": r["merged"],
                "rejected": r["rejected"],
                "rejected_share": _share(r["rejected"], r["received"]),
                "top_reasons": _top({k: int(v) for k, v in (r["reasons"] or {}).items()}),
            }
        )
    names = _rows(conn, "regency_names", {"codes": [kode]})
    if not points and not names:
        raise NotFound(f"no region {kode}")
    return {"kode_wilayah": kode, "nama_wilayah": names[0]["nama"] if names else None, "rounds": points}


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
    drift_rows = (
        [
            r | {"flagged": (r["program"], r["kode_kabupaten"]) in flagged}
            for r in drift(conn, previous, version, int(thresholds.get("drift_min_base", 50)))
        ]
        if previous
        else []
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
            "warnings": audit.get("warnings", []),  # integrity flags (counts, village codes, accounts)
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
            "drift_flagged": blocked.drift_flagged,
            "accepting": blocked.accepting(),
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
