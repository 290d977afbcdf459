"""The plausibility check of a Dukcapil extract, before anything of it reaches the reference.

The extract is the authority on who exists: a NIK it no longer carries loses its reference record, so
the region's rows for that person are refused and a death it would have carried is missed. A real
quarter removes few NIKs. An extract that would remove more than `max_removed_share` of the current
reference, or of one regency's NIKs (judged from `regency_min_removed` removals on), or whose last
line is cut off, is held for a person's decision (dtsen.ingest.dukcapil_review). Counts and regency
codes only: never a NIK.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from dtsen.sqlfiles import statements

GUARD = "ingest/dukcapil_guard.sql"


@dataclass(frozen=True)
class Thresholds:
    max_removed_share: float
    regency_min_removed: int

    @classmethod
    def from_settings(cls, cfg) -> Thresholds:
        return cls(cfg.dukcapil_max_removed_share, cfg.dukcapil_regency_min_removed)


def judge(
    conn: psycopg.Connection,
    thresholds: Thresholds,
    *,
    current: int,
    last_rec: int,
    ends_with_newline: bool,
    diff: dict[str, int],
) -> dict | None:
    """What makes the sorted extract (scratch_dukcapil: dk_diff, dk_usable, dk_conflict) implausible, as a small
    JSON-able record; None when it may be applied. `current`: NIKs current in the reference."""
    steps = statements(GUARD)
    conn.execute(steps["removed"])
    removed = conn.execute("SELECT count(*) FROM dk_removed").fetchone()[0]
    found: dict = {
        "reference_niks": current,
        "removed": removed,
        "removed_share": round(removed / current, 6) if current else 0.0,
        "max_removed_share": thresholds.max_removed_share,
        "new": diff.get("new", 0),
        "changed": diff.get("changed", 0),
        "conflicting": diff.get("conflicting", 0),
        "reasons": [],
        "regencies": [],
    }
    if current and removed / current > thresholds.max_removed_share:
        found["reasons"].append("reference_share")
    over = conn.execute(
        steps["removed_by_regency"], {"regency_min_removed": thresholds.regency_min_removed}
    ).fetchall()
    if over:
        sizes = dict(conn.execute(steps["regency_sizes"], {"regencies": [k for k, _ in over]}).fetchall())
        for kode, count in sorted(over, key=lambda r: -r[1]):
            share = count / sizes[kode] if sizes.get(kode) else 1.0
            if share > thresholds.max_removed_share:
                found["regencies"].append(
                    {
                        "kode_kabupaten": kode or None,
                        "removed": count,
                        "current": sizes.get(kode, 0),
                        "share": round(share, 6),
                    }
                )
        if found["regencies"]:
            found["reasons"].append("regency_share")
    if (
        not ends_with_newline
        and conn.execute(steps["last_line_unusable"], {"last_rec": last_rec}).fetchone()[0]
    ):
        found["reasons"].append("last_line_cut")
    conn.execute("DROP TABLE dk_removed")
    return found if found["reasons"] else None


REASONS_EN = {
    "reference_share": "it would remove {removed:,} of the reference's {reference_niks:,} current NIKs "
    "({removed_share:.2%}, above the {max_removed_share:.2%} limit)",
    "regency_share": "it would remove more than {max_removed_share:.2%} of the NIKs of {n_regencies} "
    "regency(ies): {regency_list}",
    "last_line_cut": "its last line has no line end and cannot be read: the file looks cut off",
}


def describe(found: dict, limit: int = 10) -> str:
    """Why the extract is held, in one English sentence for data ops (counts and regency codes)."""
    regencies = found.get("regencies") or []
    shown = ", ".join(
        f"{r['kode_kabupaten'] or 'no regency'} {r['removed']:,} of {r['current']:,}"
        for r in regencies[:limit]
    ) + (f" and {len(regencies) - limit} more" if len(regencies) > limit else "")
    values = found | {"n_regencies": len(regencies), "regency_list": shown}
    return "; ".join(REASONS_EN[r].format(**values) for r in found["reasons"])
