"""docker-compose.yaml and the Dockerfile must match what the code reads (no Docker engine here)."""

from __future__ import annotations

import re

import yaml

from dtsen.paths import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yaml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
CONTRACT_ENV = {"DTSEN_DATABASE_URL", "DTSEN_LANDING_ROOT", "DTSEN_PUBLISH_ROOT"}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_parses_and_every_pipeline_container_gets_the_contract_settings():
    services = _compose()["services"]
    pipeline = {name: svc for name, svc in services.items() if svc.get("image", "").startswith("dtsen")}
    assert pipeline, "no service runs the project image"
    for name, svc in pipeline.items():
        assert CONTRACT_ENV <= set(svc["environment"]), name


def test_compose_settings_are_ones_the_code_reads():
    source = (PROJECT_ROOT / "src" / "dtsen" / "config.py").read_text()
    for svc in _compose()["services"].values():
        for var in svc.get("environment") or {}:
            if var.startswith("DTSEN_"):
                assert f'"{var}"' in source, var


def test_compose_warehouse_url_points_at_the_warehouse_service():
    compose = _compose()
    url = compose["services"]["dtsen-job"]["environment"]["DTSEN_DATABASE_URL"]
    host = re.search(r"@([^:/]+)", url).group(1)
    assert host in compose["services"]


def test_dockerfile_copies_paths_that_exist_and_installs_from_the_lock():
    text = DOCKERFILE.read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        for part in line.split()[:-1]:  # the last token is the destination
            assert (PROJECT_ROOT / part).exists(), part
    assert "--require-hashes -r requirements.lock" in text
