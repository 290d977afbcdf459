"""What adopting a model would change in the current version, for its card: families entering and
leaving desil 1-5 per regency, and recipients added and removed per program, were the version ranked
with it (sql/model/impact.sql). One pass over the version's families and members, as a candidate
build does; only counts come back."""

from __future__ import annotations

import psycopg

from dtsen.programs import ProgramSet
from dtsen.publish.candidate import eligibility_context_sql, ranked_score_sql, version_members
from dtsen.rank.model import RankingModel, family_features_query
from dtsen.sqlfiles import statements


def _scores(model: RankingModel, version: int) -> str:
    select = f"f.no_kk, a.jumlah_anggota, {ranked_score_sql(model)} AS skor"
    families = f"(SELECT * FROM publish.keluarga WHERE version = {int(version)})"  # noqa: S608 (an int)
    query = family_features_query(select, families, version_members(version), model.member_features_used())
    return f"CREATE TEMP TABLE impact_score ON COMMIT DROP AS {query}"


def impact(conn: psycopg.Connection, model: RankingModel, version: int, programs: ProgramSet) -> dict:
    """Counts of what ranking `version` with `model` would change (run inside the caller's
    transaction: its temporary tables go with it)."""
    reference_date, snapshot_pk = conn.execute(
        "SELECT v.reference_date, r.dukcapil_snapshot_pk FROM publish.version v "
        "JOIN ingest.round r ON r.round_seq = v.round_seq WHERE v.version = %s",
        (version,),
    ).fetchone()
    params = {"version": version, "reference_date": reference_date, "snapshot_pk": snapshot_pk}
    sql = statements("model/impact.sql")
    conn.execute(_scores(model, version), params)
    conn.execute(sql["impact_desil"], params)
    regencies = [
        dict(
            zip(
                (
                    "regency",
                    "name",
                    "families",
                    "entering",
                    "leaving",
                    "individuals_entering",
                    "individuals_leaving",
                    "desil_moved",
                ),
                row,
                strict=True,
            )
        )
        for row in conn.execute(sql["per_regency"], params)
    ]
    conn.execute(
        "CREATE TEMP TABLE impact_context ON COMMIT DROP AS "
        + eligibility_context_sql(version_members(version), programs),
        params,
    )
    conn.execute(sql["reorder_context"], params)
    per_program = {}
    for program in programs.programs:
        # the program's rules over the context as the model would order it, beside the version's recipients
        added, removed, recipients = conn.execute(
            "WITH now AS (SELECT c.nik FROM impact_context c WHERE "  # noqa: S608 (validated rules)
            f"{program.eligible_sql()}), was AS (SELECT nik FROM publish.recipient "
            "WHERE version = %(version)s AND program = %(program)s) "
            "SELECT (SELECT count(*) FROM (SELECT nik FROM now EXCEPT SELECT nik FROM was) n), "
            "(SELECT count(*) FROM (SELECT nik FROM was EXCEPT SELECT nik FROM now) w), (SELECT count(*) FROM now)",
            params | {"program": program.id},
        ).fetchone()
        per_program[program.id] = {"recipients": recipients, "added": added, "removed": removed}
    return {
        "version": version,
        "families": sum(r["families"] for r in regencies),
        "entering": sum(r["entering"] for r in regencies),
        "leaving": sum(r["leaving"] for r in regencies),
        "regencies": regencies,
        "programs": per_program,
    }
