"""Verification cases (issue 26, item 1): the round's cases step opens one live case per flagged family
with every origin's reason, records every change of state, expires what passed its due date, and does
not raise again a flag a closed case settled; `dtsen cases` lists, shows, assigns and expires them with
the keys masked.

The sample's three rounds with config/cases.json made eager: a family is stale after one round without
an update (all of them), and a stale reason is due the day after its round, so 2026-Q3 expires what
2026-Q2 opened for staleness."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from tests.factories import run_steps

ROUNDS = ("2026-Q1", "2026-Q2", "2026-Q3")
Q2_REFERENCE = dt.date(2026, 6, 30)
LIVE = ("OPEN", "ASSIGNED", "VISITED")


def _eager_config(path) -> None:
    config = json.loads((PROJECT_ROOT / "config" / "cases.json").read_text())
    config["origins"]["stale"] |= {"rounds": 1, "max_per_round": 0, "due_days": 1}
    config["origins"]["implausible"] |= {"due_days": 200}
    path.write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture(scope="module")
def rounds(module_warehouse, tmp_path_factory):
    work = tmp_path_factory.mktemp("cases")
    config = work / "cases.json"
    _eager_config(config)
    steps = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_CASES_CONFIG", str(config))
        env.setenv("DTSEN_OUTBOX", str(work / "outbox"))
        for round_id in ROUNDS:
            steps[round_id] = run_steps(
                round_id, landing_root=SAMPLE_DIR / "landing", publish_root=work / "publish"
            )
        module_warehouse.commit()
        yield module_warehouse, steps, config, work / "publish"


def _reasons(conn, round_seq: int, origin: str) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for no_kk, detail in conn.execute(
        "SELECT c.no_kk, r.detail FROM cases.case_reason r JOIN cases.verification_case c USING (id_kasus) "
        "WHERE r.round_seq = %s AND r.origin = %s",
        (round_seq, origin),
    ):
        found.setdefault(no_kk, set()).add(detail)
    return found


def test_the_cases_config_names_the_field_it_refuses(tmp_path):
    from dtsen.cases.config import load_cases_config
    from dtsen.errors import DataError

    config = json.loads((PROJECT_ROOT / "config" / "cases.json").read_text())
    bad = tmp_path / "cases.json"
    bad.write_text(
        json.dumps(config | {"origins": config["origins"] | {"sanggah": {"priority": 0, "due_days": 30}}})
    )
    with pytest.raises(DataError, match=r"origins\.sanggah\.priority"):
        load_cases_config(bad)
    bad.write_text(json.dumps(config | {"overdue_share": 0.5}))
    with pytest.raises(DataError, match="overdue_share"):
        load_cases_config(bad)
    assert load_cases_config(PROJECT_ROOT / "config" / "cases.json").origins.stale.rounds == 8


def test_the_first_round_opens_no_case(rounds):
    _, steps, _, _ = rounds
    first = steps["2026-Q1"]["cases"]
    assert (first["opened"], first["expired"], first["flags"]) == (0, 0, {})


def test_every_flagged_family_has_one_live_case_with_each_origins_reason(rounds):
    conn, steps, _, _ = rounds
    implausible: dict[int, set[str]] = {}
    for no_kk, rule in conn.execute(
        "SELECT i.no_kk, i.rule FROM publish.implausible i JOIN registry.family f ON f.no_kk = i.no_kk "
        "WHERE i.version = 1"
    ):
        implausible.setdefault(no_kk, set()).add(rule)
    assert implausible, "the sample's first version has implausible recipients"
    # Q2's cases step flagged version 1's implausible recipients, each with its rules
    assert _reasons(conn, 2, "implausible") == implausible
    stale = _reasons(conn, 2, "stale")
    q2 = steps["2026-Q2"]["cases"]
    assert q2["flags"]["implausible"] == sum(map(len, implausible.values()))
    assert q2["flags"]["stale"] == len(stale) > 100 and all(v == {"rounds:1"} for v in stale.values())
    # one case per family, whatever flagged it
    opened = conn.execute(
        "SELECT no_kk, priority, due_date, case_type FROM cases.verification_case WHERE opened_round = 2"
    ).fetchall()
    # the sample's households' objections and proposals flag families too (tests/test_aduan.py)
    heard = set(_reasons(conn, 2, "sanggah")) | set(_reasons(conn, 2, "usul"))
    assert heard, "the sample's 2026-Q2 carries objections"
    flagged = set(implausible) | set(stale) | heard
    assert len(opened) == len({r[0] for r in opened}) == len(flagged) == q2["opened"]
    kinds = {r[0]: r[3] for r in opened}
    assert {kinds[k] for k in flagged - heard} == {"VERIFIKASI"}
    assert {kinds[k] for k in heard} <= {"SANGGAH", "USUL"}
    both = set(implausible) & set(stale)
    assert both, "some implausible family was not updated in 2026-Q2"
    for no_kk, priority, due_date, _ in opened:
        if (
            no_kk in both - heard
        ):  # (an objection is more urgent still: priority 1)  # the implausible reason's priority, the stale reason's due date
            assert (priority, due_date) == (2, Q2_REFERENCE + dt.timedelta(days=1))
    (twice,) = conn.execute(
        "SELECT count(*) FROM (SELECT no_kk FROM cases.verification_case WHERE state IN ('OPEN', 'ASSIGNED', "
        "'VISITED') GROUP BY no_kk HAVING count(*) > 1) t"
    ).fetchone()
    assert twice == 0


def test_every_case_opens_with_a_recorded_transition_naming_its_reasons(rounds):
    conn, _, _, _ = rounds
    rows = conn.execute(
        "SELECT c.id_kasus, c.opened_round, t.from_state, t.to_state, t.round_seq, t.decided_by, t.why, "
        "(SELECT array_agg(r.origin || ' ' || r.detail ORDER BY r.origin, r.detail) FROM cases.case_reason r "
        " WHERE r.id_kasus = c.id_kasus AND r.round_seq = c.opened_round) "
        "FROM cases.verification_case c JOIN cases.case_transition t ON t.id_kasus = c.id_kasus AND t.from_state IS NULL"
    ).fetchall()
    (cases,) = conn.execute("SELECT count(*) FROM cases.verification_case").fetchone()
    assert len(rows) == cases > 0
    for id_kasus, opened_round, was, now, round_seq, by, why, reasons in rows:
        assert (was, now, by, round_seq) == (None, "OPEN", "system", opened_round)
        assert why == "opened: " + ", ".join(reasons), id_kasus
    # no family card number or NIK in what the cases say about themselves
    keys = {str(k) for (k,) in conn.execute("SELECT no_kk FROM registry.family")}
    keys |= {str(k) for (k,) in conn.execute("SELECT nik FROM registry.person")}
    said = [w for (w,) in conn.execute("SELECT why FROM cases.case_transition")]
    said += [d for (d,) in conn.execute("SELECT detail FROM cases.case_reason")]
    assert not {n for text in said for n in re.findall(r"\d{16}", text)} & keys


def test_a_case_past_its_due_date_expires_and_its_flag_is_not_raised_again(rounds):
    conn, steps, _, _ = rounds
    q3 = steps["2026-Q3"]["cases"]
    expired = conn.execute(
        "SELECT c.no_kk, t.from_state, t.round_seq, t.decided_by, t.why FROM cases.verification_case c "
        "JOIN cases.case_transition t ON t.id_kasus = c.id_kasus AND t.to_state = 'EXPIRED' WHERE c.state = 'EXPIRED'"
    ).fetchall()
    q2_cases = conn.execute(
        "SELECT no_kk, due_date, state, closed_round FROM cases.verification_case WHERE opened_round = 2"
    ).fetchall()
    due_next_day = {no_kk for no_kk, due, _, _ in q2_cases if due == Q2_REFERENCE + dt.timedelta(days=1)}
    # and the sample's objections and proposals, due in 30 and 60 days: before Q3's reference date too
    due_by_q3 = {no_kk: due for no_kk, due, _, _ in q2_cases if due < dt.date(2026, 9, 30)}
    assert set(due_by_q3) > due_next_day
    # Q3's own Kemensos results resolve some cases first; the rest of the overdue ones expire
    resolved = {no_kk for no_kk, _, state, closed in q2_cases if (state, closed) == ("RESOLVED", 3)}
    assert {r[0] for r in expired} == set(due_by_q3) - resolved and q3["expired"] == len(expired) > 0
    for no_kk, was, round_seq, by, why in expired:
        assert (was, round_seq, by) == ("OPEN", 3, "system")
        assert why == f"due {due_by_q3[no_kk]}, no field result by 2026-09-30"
    # implausible-only cases (due in 200 days) without a result stay open
    still_open = {no_kk for no_kk, _, state, _ in q2_cases if state == "OPEN"}
    assert still_open == {no_kk for no_kk, _, _, _ in q2_cases} - set(due_by_q3) - resolved != set()
    # Q3 flags as stale only families whose staleness no closed case settled: those Q2 updated
    q3_stale = _reasons(conn, 3, "stale")
    assert q3_stale and not set(q3_stale) & due_next_day
    updated = dict(
        conn.execute(
            "SELECT no_kk, updated_round FROM registry.family WHERE no_kk = ANY(%s)", (list(q3_stale),)
        )
    )
    assert set(updated.values()) == {2}


def test_the_cases_step_run_again_finds_its_round_done(rounds):
    from dtsen.round import STEP, RoundContext

    conn, steps, config, _ = rounds
    before = conn.execute("SELECT count(*), max(transition_pk) FROM cases.case_transition").fetchone()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_CASES_CONFIG", str(config))
        again = STEP["cases"].run(RoundContext.create("2026-Q3", landing_root=SAMPLE_DIR / "landing"))
    conn.rollback()
    first = steps["2026-Q3"]["cases"]
    assert again["done_before"] is True and first["done_before"] is False
    assert {k: again[k] for k in ("opened", "expired", "flags")} == {
        k: first[k] for k in ("opened", "expired", "flags")
    }
    assert conn.execute("SELECT count(*), max(transition_pk) FROM cases.case_transition").fetchone() == before


def test_each_versions_manifest_counts_what_its_round_did_to_the_cases(rounds):
    conn, steps, _, publish = rounds
    for version, round_id in ((1, "2026-Q1"), (3, "2026-Q3")):
        manifest = json.loads((publish / "versions" / str(version) / "manifest.json").read_text())
        done = steps[round_id]["cases"]
        assert manifest["cases"] == {
            "checked": True,
            "opened": done["opened"],
            "resolved": done["resolved"],
            "expired_overdue": done["expired"],
            "flags": done["flags"],
            "live": done["live"],
        }
    live = dict(
        conn.execute(
            "SELECT state, count(*) FROM cases.verification_case WHERE state IN ('OPEN', 'ASSIGNED', 'VISITED') "
            "GROUP BY state"
        ).fetchall()
    )
    conn.rollback()
    assert steps["2026-Q3"]["cases"]["live"] == live and sum(live.values()) > 0


def test_regencies_that_let_their_due_cases_expire_are_reported_to_data_ops_once(rounds):
    conn, steps, config, publish = rounds
    share = json.loads(config.read_text())["overdue_alert_share"]
    due = conn.execute(
        "SELECT left(kode_wilayah, 4), count(*), count(*) FILTER (WHERE state = 'EXPIRED') "
        "FROM cases.verification_case WHERE due_date < '2026-09-30' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    conn.rollback()
    expected = [
        {"kode": k, "due": n, "expired": x, "share": round(x / n, 4)} for k, n, x in due if x > share * n
    ]
    assert expected and steps["2026-Q3"]["cases"]["overdue_regions"] == expected
    assert steps["2026-Q2"]["cases"]["overdue_regions"] == []  # nothing was due yet
    outbox = publish.parent / "outbox"
    told = [p.read_text() for p in outbox.glob("*.eml") if "Verification cases overdue" in p.read_text()]
    assert len(told) == 1  # once, to data ops: a rerun of the step finds the notice sent (send_once)
    assert "To: dataops@dtsen.example" in told[0] and "(round 2026-Q3)" in told[0]
    for region in expected:
        assert f"{region['kode']}: {region['expired']} of {region['due']} expired" in told[0]
    assert not re.search(r"\d{16}", told[0])
