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
    source = "".join(
        p.read_text() for folder in ("src", "dags") for p in (PROJECT_ROOT / folder).rglob("*.py")
    )
    for svc in _compose()["services"].values():
        for var in svc.get("environment") or {}:
            if var.startswith("DTSEN_"):
                assert f'"{var}"' in source, var


def test_compose_warehouse_url_points_at_the_warehouse_service():
    compose = _compose()
    url = compose["services"]["airflow-worker"]["environment"]["DTSEN_DATABASE_URL"]
    host = re.search(r"@([^:/]+)", url).group(1)
    assert host in compose["services"]


def test_dockerfile_copies_paths_that_exist_and_installs_from_the_lock():
    text = DOCKERFILE.read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        for part in line.split()[:-1]:  # the last token is the destination
            assert (PROJECT_ROOT / part).exists(), part
    assert "--require-hashes -r requirements.lock" in text


AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
    "airflow-db",
    "redis",
    "warehouse",
    "mailcatcher",
}


def _host(url: str) -> str:
    return re.search(r"://(?:[^@/]*@)?([^:/?]+)", url).group(1)


def test_compose_has_the_airflow_3_celery_shape_with_the_project_image():
    services = _compose()["services"]
    assert AIRFLOW_SERVICES <= set(services)
    for name in AIRFLOW_SERVICES - {"airflow-db", "redis", "warehouse", "mailcatcher"}:
        env = services[name]["environment"]
        assert services[name]["image"] == "dtsen:latest", name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        for key in (
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CELERY__BROKER_URL",
            "AIRFLOW_CONN_DTSEN_SMTP",
            "DTSEN_DATABASE_URL",
        ):
            assert _host(env[key]) in services, (name, key)  # every address is a service of this file
    assert services["airflow-apiserver"]["command"] == ["airflow", "api-server"]
    assert services["airflow-worker"]["command"] == ["airflow", "celery", "worker"]


def test_compose_paths_are_where_the_image_puts_the_dags_and_config():
    text = DOCKERFILE.read_text()
    workdir = re.search(r"^WORKDIR (\S+)$", text, flags=re.M).group(1)
    copied = {
        dest.rstrip("/").removeprefix("./"): src
        for src, dest in re.findall(r"^COPY (\S+) (\S+)$", text, re.M)
    }
    env = _compose()["services"]["airflow-worker"]["environment"]
    for key, folder in (("AIRFLOW__CORE__DAGS_FOLDER", "dags"), ("AIRFLOW__CORE__PLUGINS_FOLDER", "plugins")):
        assert env[key] == f"{workdir}/{folder}" and folder in copied, key
    assert env["DTSEN_SUBSCRIBERS"].startswith(f"{workdir}/config/") and "config" in copied
    assert (PROJECT_ROOT / env["DTSEN_SUBSCRIBERS"].removeprefix(f"{workdir}/")).exists()


def test_every_container_running_tasks_mounts_the_landing_zone_and_publish_root():
    services = _compose()["services"]
    for name in (
        "airflow-worker",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-apiserver",
    ):
        env, mounts = services[name]["environment"], services[name]["volumes"]
        targets = {m.split(":")[1] for m in mounts}
        assert env["DTSEN_LANDING_ROOT"] in targets and env["DTSEN_PUBLISH_ROOT"] in targets, name


def test_the_smtp_connection_in_compose_is_the_one_the_dags_use():
    from dtsen.airflow_support import SMTP_CONN_ID

    env = _compose()["services"]["airflow-worker"]["environment"]
    assert f"AIRFLOW_CONN_{SMTP_CONN_ID.upper()}" in env


# -- defaults that must not reach production (issue 10) ------------------------------------------

ENV_EXAMPLE = PROJECT_ROOT / ".env.example"


def _example_env() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


def test_compose_commits_no_secret_and_requires_each_from_the_env_file():
    from dtsen.deployment import SECRETS

    text = COMPOSE.read_text()
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, name
        assert all(u.startswith(":?") for u in uses), (name, uses)  # required, never a default
    assert set(SECRETS) <= set(_example_env())
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()
    services = _compose()["services"]
    assert not {"POSTGRES_PASSWORD"} & {
        k for s in services.values() for k, v in (s.get("environment") or {}).items() if "${" not in str(v)
    }


def test_the_init_job_checks_the_secrets_before_anything_starts():
    services = _compose()["services"]
    command = services["airflow-init"]["command"][-1]
    assert command.startswith("dtsen check-deployment && ")
    env = services["airflow-init"]["environment"]
    from dtsen.deployment import ALLOW_INSECURE, SECRETS

    assert set(SECRETS) | {ALLOW_INSECURE} <= set(env)


def test_check_deployment_refuses_placeholders_unless_a_trial_says_so():
    import base64
    import os
    import secrets
    import subprocess
    import sys

    from dtsen.deployment import SECRETS

    def run(env: dict[str, str]) -> subprocess.CompletedProcess:
        clean = {
            k: v for k, v in os.environ.items() if k not in SECRETS and k != "DTSEN_ALLOW_INSECURE_DEFAULTS"
        }
        return subprocess.run(
            [sys.executable, "-m", "dtsen.cli", "check-deployment"],
            env=clean | env,
            capture_output=True,
            text=True,
        )

    example = _example_env() | {"DTSEN_ALLOW_INSECURE_DEFAULTS": "0"}
    refused = run(example)
    assert refused.returncode == 1
    for name in SECRETS:
        assert name in refused.stderr
        assert example[name] not in refused.stderr  # values are never printed
    trial = run(example | {"DTSEN_ALLOW_INSECURE_DEFAULTS": "1"})
    assert trial.returncode == 0 and "WARNING" in trial.stdout
    strong = {name: secrets.token_hex(24) for name in SECRETS}
    strong["AIRFLOW_FERNET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    strong["MAILPIT_UI_AUTH"] = "dataops:" + secrets.token_hex(16)
    strong["DTSEN_API_SIGNING_KEY"] = base64.b64encode(os.urandom(32)).decode()
    assert run(strong).returncode == 0
    assert run({}).returncode == 1  # nothing set at all


def test_redis_mail_catcher_and_warehouse_are_not_left_open():
    services = _compose()["services"]
    assert "--requirepass" in services["redis"]["command"]
    assert "${REDIS_PASSWORD" in services["airflow-worker"]["environment"]["AIRFLOW__CELERY__BROKER_URL"]
    assert all(p.startswith("127.0.0.1:") for p in services["mailcatcher"]["ports"])
    assert "MP_UI_AUTH" in services["mailcatcher"]["environment"]
    warehouse = services["warehouse"]["command"]
    assert "log_error_verbosity=terse" in warehouse and "log_min_error_statement=panic" in warehouse


# -- least privilege in the warehouse (issue 24, item 2) -------------------------------------------


def test_each_component_has_a_login_of_its_own_and_only_the_init_job_holds_the_owners():
    import json

    from dtsen.deployment import SECRETS

    services = _compose()["services"]
    env = {name: svc.get("environment") or {} for name, svc in services.items()}

    def user(url: str) -> str:
        return re.match(r"[a-z+]+://([^:@/]+)[:@]", url).group(1)

    owner = env["warehouse"]["POSTGRES_USER"]
    used = {
        "round": env["airflow-worker"]["DTSEN_DATABASE_URL"],
        "api": env["registry-api"]["DTSEN_API_DATABASE_URL"],
        "cockpit": env["airflow-apiserver"]["DTSEN_COCKPIT_DATABASE_URL"],
    }
    logins = {component: user(url) for component, url in used.items()}
    assert len(set(logins.values())) == 3 and owner not in logins.values(), logins
    # `dtsen db migrate` in the init job runs as the owner and makes exactly the logins the others use
    init = env["airflow-init"]
    assert user(init["DTSEN_OWNER_DATABASE_URL"]) == owner
    made = {
        "round": init["DTSEN_DATABASE_URL"],
        "api": init["DTSEN_API_DATABASE_URL"],
        "cockpit": init["DTSEN_COCKPIT_DATABASE_URL"],
    }
    assert made == used
    assert "dtsen db migrate" in services["airflow-init"]["command"][-1]
    # a container holds its own component's password only; the owner's is the init job's (and the server's)
    passwords = {c: re.search(r"\$\{(\w+)", url).group(1) for c, url in used.items()}
    owner_password = re.search(r"\$\{(\w+)", init["DTSEN_OWNER_DATABASE_URL"]).group(1)
    assert set(passwords.values()) | {owner_password} <= set(SECRETS)
    holds = {name: set(re.findall(r"\$\{(\w+)", json.dumps(e))) for name, e in env.items()}
    for name, found in holds.items():
        if name not in ("airflow-init", "warehouse"):
            assert owner_password not in found, name
    assert holds["registry-api"] & set(passwords.values()) == {passwords["api"]}
    assert holds["airflow-apiserver"] & set(passwords.values()) == {passwords["cockpit"]}
    assert holds["airflow-worker"] & set(passwords.values()) == {passwords["round"]}
    assert (
        user(env["registry-api"]["DTSEN_DATABASE_URL"]) == logins["api"]
    )  # no other login in that container


# -- headers and binding (issue 24, item 9) --------------------------------------------------------


def _holders(variable: str) -> set[str]:
    """The services whose environment takes `variable` from the .env file."""
    import json

    return {
        name
        for name, svc in _compose()["services"].items()
        if "${" + variable in json.dumps(svc.get("environment") or {})
    }


def test_the_disclosure_key_is_in_the_registry_api_only_and_the_signing_key_where_callbacks_are_signed():
    # airflow-init holds every secret for `dtsen check-deployment`, and runs nothing else of them
    assert _holders("DTSEN_API_DISCLOSURE_KEY") == {"registry-api", "airflow-init"}
    assert _holders("DTSEN_CALLBACK_SIGNING_KEY") == {
        "registry-api",  # hands each subscriber its secret
        "airflow-worker",  # dtsen_notify_programs signs the callbacks
        "notify-retry",  # ... and signs them again
        "airflow-init",
    }
    # the registry's private key signs its answers: in the API's container only
    assert _holders("DTSEN_API_SIGNING_KEY") == {"registry-api", "airflow-init"}


def test_nothing_is_published_in_plain_http_beyond_loopback():
    from dtsen.config import settings

    services = _compose()["services"]
    for name, svc in services.items():
        for mapping in svc.get("ports") or []:
            if mapping.startswith("127.0.0.1:"):
                continue
            # published on every interface: only the registry API, and only in HTTPS
            assert name == "registry-api", (name, mapping)
            command = svc["command"]
            assert "--tls-cert" in command and "--tls-key" in command
            listens = (
                int(command[command.index("--port") + 1]) if "--port" in command else settings().api_port
            )
            assert int(mapping.rsplit(":", 1)[1]) == listens, mapping
            # source:target[:ro]; the source may hold compose's `${VAR:-default}`
            mounts = {
                m.split(":")[-2] if m.endswith((":ro", ":rw")) else m.split(":")[-1] for m in svc["volumes"]
            }
            for flag in ("--tls-cert", "--tls-key"):
                path = command[command.index(flag) + 1]
                assert any(path.startswith(f"{m}/") for m in mounts), path  # the files are mounted
