"""What a version says about integrity: the additive `integrity` section of its manifest and the
warnings its audit and approval text show (counts, village codes and accounts: no personal data)."""

from __future__ import annotations

import psycopg
from psycopg.rows import tuple_row

from dtsen.integrity.config import load_integrity


def version_integrity(conn: psycopg.Connection, version: int) -> dict:
    """The round's split flags and the version's implausible families per rule and regency."""
    cur = conn.cursor(row_factory=tuple_row)
    round_seq = cur.execute(
        "SELECT round_seq FROM publish.version WHERE version = %s", (version,)
    ).fetchone()[0]
    stored = cur.execute(
        "SELECT scored, why, counts FROM quality.integrity_round WHERE round_seq = %s", (round_seq,)
    ).fetchone()
    splits: dict = {"scored": False, "why": "the round was not checked"}
    if stored is not None:
        splits = {"scored": stored[0]} | ({"why": stored[1]} if stored[1] else {}) | (stored[2] or {})
    splits["flags"] = [
        {"scope": s, "key": k, "kode_kabupaten": kab, "metric": m, "families": n}
        for s, k, kab, m, n in cur.execute(
            "SELECT scope, key, kode_kabupaten, metric, families FROM quality.integrity_flag "
            "WHERE round_seq = %s ORDER BY scope, key, metric",
            (round_seq,),
        )
    ]
    per_rule: dict[str, dict] = {
        r.id: {"description": r.description, "families": 0, "per_kabupaten": {}}
        for r in load_integrity().implausible
    }
    for rule, kab, families in cur.execute(
        "SELECT rule, kode_kabupaten, families FROM publish.implausible_count WHERE version = %s "
        "ORDER BY rule, kode_kabupaten",
        (version,),
    ):
        entry = per_rule.setdefault(rule, {"description": rule, "families": 0, "per_kabupaten": {}})
        entry["families"] += int(families)
        entry["per_kabupaten"][kab] = int(families)
    return {"splits": splits, "implausible": per_rule}


def integrity_warnings(section: dict) -> list[str]:
    """Plain English lines for operators: what the integrity checks flagged (warnings, never blocks)."""
    lines = []
    splits = section.get("splits", {})
    for flag in splits.get("flags", []):
        what = "split-off" if flag["metric"] == "split" else "one- or two-person"
        where = f"village {flag['key']}" if flag["scope"] == "DESA" else f"account {flag['key']}"
        lines.append(
            f"integrity: {where} (regency {flag['kode_kabupaten']}) created {flag['families']} new {what} "
            "families, far above its peers and its own history: field verification requested"
        )
    for rule, entry in sorted(section.get("implausible", {}).items()):
        if not entry["families"]:
            continue
        lines.append(
            f"integrity: {entry['families']:,} families meet implausible-recipient rule {rule} "
            f"in {len(entry['per_kabupaten'])} regencies (listed for the ground check; nobody is excluded)"
        )
    return lines
