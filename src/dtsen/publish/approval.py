"""A blocked candidate as a person decides on it: what failed, which regencies and programs drifted
and by how much, and what approving it means. The Airflow approval task shows it as Markdown, the
cockpit as a page, the email to data ops as text; all three read it from here.

Only a candidate whose failed checks are all approvable (drift, desil shares) is put to a person: a
broken invariant (a duplicate NIK, a family without a head) cannot be approved, it must be fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg.rows import tuple_row

from dtsen.publish.audit import APPROVABLE_RULES


@dataclass(frozen=True)
class BlockedCandidate:
    version: int
    round_id: str
    status: str
    previous_version: int | None
    failed_checks: list[dict]  # rule, description, observed
    drift_flagged: list[dict]  # kode_kabupaten, nama_kabupaten, program, sebelumnya, ditambah, ...
    thresholds: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # integrity flags: shown, not what blocked it

    @property
    def approvable(self) -> bool:
        return bool(self.failed_checks) and all(c["rule"] in APPROVABLE_RULES for c in self.failed_checks)

    @property
    def subject(self) -> str:
        return f"Publish DTSEN version {self.version} (round {self.round_id}) despite its audit?"

    def accepting(self) -> list[str]:
        """What the approver accepts, in plain words."""
        lines = [
            f"Version {self.version} becomes the current DTSEN version for every program, replacing "
            f"version {self.previous_version or '-'}.",
        ]
        for d in self.drift_flagged:
            lines.append(
                f"{d['program']} in {d['nama_kabupaten']} ({d['kode_kabupaten']}): {d['sebelumnya']:,} recipients "
                f"before, {d['ditambah']:,} added ({d['added_share']:.0%}) and {d['dikeluarkan']:,} removed "
                f"({d['removed_share']:.0%})."
            )
        if any(c["rule"] == "desil_shares" for c in self.failed_checks):
            lines.append(
                "The desil shares are outside their tolerance: some desil hold more or fewer than a tenth."
            )
        return lines

    def markdown(self, cockpit_url: str | None = None) -> str:
        max_share = self.thresholds.get("drift_max_share")
        lines = [
            f"**Version {self.version}** (round {self.round_id}) failed only checks an admin may accept. "
            "Approve to publish it; reject (or no answer in time) keeps the current version current.",
            "",
            "| check | what it checks | observed |",
            "|---|---|---|",
            *(f"| {c['rule']} | {c['description']} | {c['observed']} |" for c in self.failed_checks),
        ]
        if self.drift_flagged:
            lines += [
                "",
                f"**Drift** beyond {max_share:.0%} of the previous recipients" if max_share else "**Drift**",
                "",
                "| regency | program | before | added | removed |",
                "|---|---|---:|---:|---:|",
                *(
                    f"| {d['nama_kabupaten']} ({d['kode_kabupaten']}) | {d['program']} | {d['sebelumnya']:,} | "
                    f"{d['ditambah']:,} ({d['added_share']:.0%}) | {d['dikeluarkan']:,} ({d['removed_share']:.0%}) |"
                    for d in self.drift_flagged
                ),
            ]
        if self.warnings:
            lines += [
                "",
                "**Integrity warnings** (they do not block; the ground check decides):",
                "",
                *(f"- {w}" for w in self.warnings),
            ]
        lines += ["", "**Approving means:**", "", *(f"- {line}" for line in self.accepting())]
        if cockpit_url:
            lines += ["", f"The whole audit: [DTSEN cockpit, version {self.version}]({cockpit_url})"]
        return "\n".join(lines)


_CANDIDATE_OF_ROUND = (
    "SELECT v.version, v.status FROM publish.version v JOIN ingest.round r ON r.round_seq = v.round_seq "
    "WHERE r.round_id = %s AND v.status <> 'DISCARDED'"
)


def candidate_of_round(
    conn: psycopg.Connection, round_id: str, *, lock: bool = False
) -> tuple[int, str] | None:
    """The round's live candidate (version, status), if it has one. `lock` holds its row until the
    caller's transaction ends, so a decision taken on the status read is not raced by another one."""
    query = _CANDIDATE_OF_ROUND + " FOR UPDATE OF v" if lock else _CANDIDATE_OF_ROUND
    return conn.cursor(row_factory=tuple_row).execute(query, (round_id,)).fetchone()


def blocked_candidate(conn: psycopg.Connection, version: int) -> BlockedCandidate | None:
    """The version as a decision, if it is BLOCKED; None otherwise."""
    cur = conn.cursor(row_factory=tuple_row)  # whatever rows the caller's connection makes
    row = cur.execute(
        "SELECT v.version, r.round_id, v.status, v.previous_version, v.audit FROM publish.version v "
        "JOIN ingest.round r ON r.round_seq = v.round_seq WHERE v.version = %s",
        (version,),
    ).fetchone()
    if row is None or row[2] != "BLOCKED":
        return None
    audit = row[4] or {}
    names = dict(
        cur.execute(
            "SELECT kode, nama FROM ref.kabupaten WHERE kode = ANY(%s)",
            ([d["kode_kabupaten"] for d in audit.get("drift_flagged", [])],),
        ).fetchall()
    )
    flagged = [
        d | {"nama_kabupaten": names.get(d["kode_kabupaten"], "?")}
        for d in sorted(audit.get("drift_flagged", []), key=lambda d: (d["kode_kabupaten"], d["program"]))
    ]
    return BlockedCandidate(
        version=row[0],
        round_id=row[1],
        status=row[2],
        previous_version=row[3],
        failed_checks=[
            {k: c[k] for k in ("rule", "description", "observed")}
            for c in audit.get("checks", [])
            if not c["success"]
        ],
        drift_flagged=flagged,
        thresholds=audit.get("thresholds", {}),
        warnings=audit.get("warnings", []),
    )


def pending_approval(conn: psycopg.Connection, round_id: str) -> BlockedCandidate | None:
    """The round's candidate if it waits for a person: BLOCKED on approvable checks only."""
    found = candidate_of_round(conn, round_id)
    if found is None or found[1] != "BLOCKED":
        return None
    blocked = blocked_candidate(conn, found[0])
    return blocked if blocked is not None and blocked.approvable else None
