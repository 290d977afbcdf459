"""The cockpit's ranking models (issue 25, item 4): `/models` lists every model with its cross-validated
errors at desil 1-5 beside the model in use and the decisions on it; `/models/{n}` is a model's card
(the page the adoption question of dtsen_ranking_model links to); `/api/models` and `/api/models/{n}`
answer the same as JSON. Rendered in process (the cockpit app mounted under /dtsen as Airflow's
api-server mounts it) over a real warehouse after the sample's rounds 2026-Q1 and 2026-Q2 and a real
fit of a model (dtsen.model.cycle.fit_model), whose card the pages must show number for number."""

from __future__ import annotations

import os
import re

import pytest

from dtsen.paths import SAMPLE_DIR
from tests.factories import run_steps

REASON = "fitted on the 2026 surveys <script>alert('reason')</script>"  # shown as text, escaped


def _cockpit(reader=lambda: "ops"):
    """The cockpit app mounted under /dtsen in a parent app; `reader` guards every route (by default
    every route let through: Airflow's authentication is the subject of one test only)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from dtsen.cockpit.app import create_app

    server = FastAPI()
    server.mount("/dtsen", create_app() if reader is None else create_app(reader=reader))
    return TestClient(server)


def _cell(page: str, table: str, row: str, field: str) -> str:
    """The text of the cell `data-field=field` in the row `row` (its attributes, e.g. 'data-model="2"')
    of the table with id `table`."""
    (body,) = re.findall(rf'<table id="{table}">(.*?)</table>', page, flags=re.S)
    (line,) = re.findall(rf"<tr {row}[^>]*>(.*?)</tr>", body, flags=re.S)
    (value,) = re.findall(rf'data-field="{field}">(.*?)</td>', line, flags=re.S)
    return value.strip()


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


@pytest.fixture
def cockpit_login(module_warehouse, monkeypatch):
    monkeypatch.setenv("DTSEN_COCKPIT_DATABASE_URL", os.environ["DTSEN_DATABASE_URL"])
    return module_warehouse


def test_with_no_model_registered_the_models_page_is_an_empty_list_and_a_model_is_not_found(cockpit_login):
    # runs before the module's rounds: an empty warehouse
    assert cockpit_login.execute("SELECT count(*) FROM publish.ranking_model").fetchone()[0] == 0
    with _cockpit() as http:
        listed, api = http.get("/dtsen/models"), http.get("/dtsen/api/models")
        missing, missing_api = http.get("/dtsen/models/7"), http.get("/dtsen/api/models/7")
    assert (listed.status_code, api.status_code, api.json()) == (200, 200, [])
    assert 'id="no-models"' in listed.text and '<table id="models">' not in listed.text
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "no ranking model 7" in missing.text and "DTSEN cockpit" in missing.text  # the cockpit's page
    assert (missing_api.status_code, missing_api.json()) == (404, {"detail": "no ranking model 7"})


@pytest.fixture(scope="module")
def fitted(module_warehouse, tmp_path_factory):
    """Rounds 2026-Q1 and 2026-Q2 (the first candidate registers the configured model file, model 1,
    adopted by the system), a model fitted by `ops` with its card (model 2), and its adoption by `ops`
    with a reason holding markup. Yields the fitted model's number and its card as the warehouse keeps it."""
    from dtsen.model import adopt
    from dtsen.model.cycle import fit_model

    conn = module_warehouse
    publish_root = tmp_path_factory.mktemp("publish")
    for round_id in ("2026-Q1", "2026-Q2"):
        run_steps(round_id, landing_root=SAMPLE_DIR / "landing", publish_root=publish_root)
        conn.commit()
    number = fit_model(by="ops")["model_version"]
    with conn.transaction():
        adopt.record(conn, number, adopt=True, decided_by="ops", reason=REASON, channel="cli")
    (card,) = conn.execute(
        "SELECT card FROM publish.ranking_model_card WHERE model_version = %s", (number,)
    ).fetchone()
    conn.commit()
    return number, card


def test_the_models_page_lists_every_model_with_its_cv_errors_at_desil_1_5_and_its_decisions(
    fitted, cockpit_login
):
    number, card = fitted
    with _cockpit() as http:
        page, api = http.get("/dtsen/models"), http.get("/dtsen/api/models")
    assert (page.status_code, api.status_code) == (200, 200)
    models = api.json()
    assert [m["model_version"] for m in models] == [number, 1]  # newest first
    fitted_model, file_model = models
    assert (fitted_model["source"], fitted_model["created_by"], fitted_model["in_use"]) == (
        "fit",
        "ops",
        True,
    )
    assert (file_model["source"], file_model["created_by"], file_model["in_use"]) == ("file", "system", False)
    assert file_model["cv"] is None and [d["outcome"] for d in file_model["decisions"]] == ["ADOPTED"]
    assert [(d["outcome"], d["decided_by"], d["reason"]) for d in fitted_model["decisions"]] == [
        ("ADOPTED", "ops", REASON)
    ]
    for model in ("candidate", "current"):
        for cutoff in ("3", "4", "5"):
            stored = card["errors"][model]["national"][cutoff]
            assert fitted_model["cv"][model][cutoff] == {
                "inclusion": stored["inclusion"],
                "exclusion": stored["exclusion"],
            }
    # the page: each model's row, its desil 1-5 errors as the card has them, which one is in use
    text = page.text
    row = f'data-model="{number}"'
    for model in ("candidate", "current"):
        for kind in ("inclusion", "exclusion"):
            assert _cell(text, "models", row, f"{model}-{kind}") == _pct(
                card["errors"][model]["national"]["5"][kind]
            )
    assert _cell(text, "models", 'data-model="1"', "candidate-inclusion") == "-"  # a file has no card
    (in_use,) = re.findall(
        r'<tr data-model="(\d+)">\s*<td><a[^>]*>\d+</a> <span class="status PUBLISHED">in use', text
    )
    assert int(in_use) == number
    assert "<script>" not in text  # the list shows who decided and when; the reason is on the model's page
    assert 'href="models/1"' in text and f'href="models/{number}"' in text


def test_a_models_page_is_its_card_beside_the_model_in_use_and_the_json_is_the_same(fitted, cockpit_login):
    number, card = fitted
    with _cockpit() as http:
        page, api = http.get(f"/dtsen/models/{number}"), http.get(f"/dtsen/api/models/{number}")
        file_page = http.get("/dtsen/models/1")
    assert (page.status_code, api.status_code, file_page.status_code) == (200, 200, 200)
    d, text = api.json(), page.text
    shown = d["card"]
    # the data it was fitted on
    training = card["training"]
    assert (shown["training"]["families"], shown["training"]["villages"]) == (
        training["families"],
        training["villages"],
    )
    assert {p["kode"]: p["families"] for p in shown["training"]["families_per_province"]} == training[
        "families_per_province"
    ]
    for kode, families in training["families_per_province"].items():
        assert _cell(text, "families-per-province", f'data-province="{kode}"', "families") == f"{families:,}"
    assert (
        f"{training['families']:,} families" in text and f"window {training['window_months']} months" in text
    )
    # penalty and regional terms, terms and coefficients
    assert shown["penalty"]["alpha"] == card["penalty"]["alpha"] and shown["regions"] == card["regions"]
    assert f"alpha {card['penalty']['alpha']:.4g}" in text and "Regional terms: province, urban" in text
    regional = {t["feature"] for t in card["terms"] if t.get("group") == "region"}
    assert {t["feature"] for t in d["terms"]["regional"]} == regional == {"kode_provinsi", "perkotaan"}
    assert len(d["terms"]["proxies"]) + len(regional) == len(card["terms"])
    linear = next(t for t in card["terms"] if t["type"] == "linear")
    assert re.search(
        rf'<tr data-feature="{linear["feature"]}"><td><code>{linear["feature"]}</code></td><td>linear</td>\s*'
        rf'<td class="text">{re.escape(format(linear["coefficient"], ".4g"))}</td>',
        text,
    )
    # the cross-validated errors, both models side by side at desil 1-3/1-4/1-5, nationally and per province
    errors = card["errors"]
    rows = {(r["scope"], r["kode"]): r for r in shown["errors"]}
    assert set(rows) == {("national", None)} | {("province", k) for k in errors["candidate"]["per_province"]}
    for (scope, kode), r in rows.items():
        where = (
            'data-scope="national"'
            if scope == "national"
            else f'data-scope="province" data-province="{kode}"'
        )
        both = {m: errors[m]["national"] if kode is None else errors[m]["per_province"][kode] for m in errors}
        assert r["n"] == both["candidate"]["n"]
        assert _cell(text, "errors", where, "n") == f"{both['candidate']['n']:,}"
        for x in r["desil"]:
            for model in ("candidate", "current"):
                for kind in ("inclusion", "exclusion"):
                    assert x[model][kind] == both[model][x["cutoff"]][kind]
                    assert _cell(text, "errors", where, f"{model}-{kind}-{x['cutoff']}") == _pct(
                        both[model][x["cutoff"]][kind]
                    )
        assert r["spearman"] == {m: both[m]["spearman"] for m in ("candidate", "current")}
    assert [x["cutoff"] for x in rows[("national", None)]["desil"]] == ["3", "4", "5"]
    # what they are judged against: the sample measures too few families twice to know the survey's noise
    noise = card["cv"]["survey_noise"]
    assert shown["cv"]["survey_noise"] == noise and noise["sd"] is None
    assert re.search(
        r'<p class="muted" id="judged-against">Judged against the measurement \(fewer than 30', text
    )
    assert shown["current_model"]["model_version"] == 1 and re.search(
        r'Against <a href="models/1">model 1</a> \(dtsen-pmt v1\)', text
    )
    # the impact, per regency and per program, counts as the card has them
    impact = card["impact"]
    assert (shown["impact"]["entering"], shown["impact"]["leaving"], shown["impact"]["families"]) == (
        impact["entering"],
        impact["leaving"],
        impact["families"],
    )
    assert f"{impact['entering']:,} families would enter desil 1-5 and {impact['leaving']:,} leave it" in text
    for regency in impact["regencies"]:
        for field in (
            "families",
            "entering",
            "leaving",
            "individuals_entering",
            "individuals_leaving",
            "desil_moved",
        ):
            assert (
                _cell(text, "impact-regencies", f'data-kab="{regency["regency"]}"', field)
                == f"{regency[field]:,}"
            )
    assert {
        p["program"]: {k: p[k] for k in ("recipients", "added", "removed")}
        for p in shown["impact"]["programs"]
    } == impact["programs"]
    for program, change in impact["programs"].items():
        for field in ("recipients", "added", "removed"):
            assert _cell(text, "impact-programs", f'data-program="{program}"', field) == f"{change[field]:,}"
    # the decisions: who, when, how and why (escaped)
    assert [(x["outcome"], x["decided_by"], x["channel"]) for x in d["decisions"]] == [
        ("ADOPTED", "ops", "cli")
    ]
    (decisions,) = re.findall(r'<table id="decisions">(.*?)</table>', text, flags=re.S)
    assert d["decisions"][0]["decided_at"] in decisions and "ops" in decisions and "cli" in decisions
    assert "&lt;script&gt;alert(" in decisions and "<script>" not in text
    # a model registered from a file: its terms and its decision, no card
    assert 'id="no-card"' in file_page.text and 'id="terms-proxies"' in file_page.text
    assert "the configured model file (pmt-v1.json)" in file_page.text


def test_the_model_pages_show_no_personal_data(fitted, cockpit_login):
    number, _ = fitted
    conn = cockpit_login
    niks = {str(n) for (n,) in conn.execute("SELECT DISTINCT nik FROM registry.person")}
    kks = {str(n) for (n,) in conn.execute("SELECT DISTINCT no_kk FROM registry.family")}
    names = {n for (n,) in conn.execute("SELECT DISTINCT nama FROM registry.person")}
    conn.commit()
    assert niks and kks and any(" " in n for n in names)
    with _cockpit() as http:
        answers = [
            http.get(p)
            for p in (
                "/dtsen/models",
                f"/dtsen/models/{number}",
                "/dtsen/api/models",
                f"/dtsen/api/models/{number}",
            )
        ]
    assert [a.status_code for a in answers] == [200] * 4
    for text in (a.text for a in answers):
        assert not set(re.findall(r"\d{16}", text)) & (niks | kks)  # no NIK, no family card number
        # no person's name (a one-word name such as "Jaya" is also part of a regency's)
        assert not [n for n in names if " " in n.strip() and n in text]
        assert '"nik"' not in text.lower() and '"no_kk"' not in text.lower()  # no such field


def test_without_a_login_the_model_pages_go_to_airflows_login_and_the_api_answers_401(fitted, cockpit_login):
    number, _ = fitted
    with _cockpit(reader=None) as http:  # Airflow's own guard, as deployed
        answers = {
            p: http.get(p, follow_redirects=False)
            for p in (
                "/dtsen/models",
                f"/dtsen/models/{number}",
                "/dtsen/api/models",
                f"/dtsen/api/models/{number}",
                "/dtsen/versions",
                "/dtsen/api/versions",
            )
        }
    assert {p: a.status_code for p, a in answers.items()} == {
        "/dtsen/models": 303,
        f"/dtsen/models/{number}": 303,
        "/dtsen/api/models": 401,
        f"/dtsen/api/models/{number}": 401,
        "/dtsen/versions": 303,  # as every other page and API route
        "/dtsen/api/versions": 401,
    }
    assert (
        answers[f"/dtsen/models/{number}"].headers["location"]
        == f"/api/v2/auth/login?next=%2Fdtsen%2Fmodels%2F{number}"
    )
    assert answers["/dtsen/api/models"].json() == {"detail": "Not authenticated"}
