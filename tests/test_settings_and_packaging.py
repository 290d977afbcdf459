"""Settings are declared once and documented; the product is deployed without the development tooling."""

from __future__ import annotations

import ast
import re

from dtsen.config import SETTINGS, settings
from dtsen.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DEV_TOOLS = ("pytest", "pytest-timeout", "ruff", "aiosmtpd", "faker", "iniconfig")


def _readme_settings() -> dict[str, str]:
    section = README.read_text().split("## Configuration", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `DTSEN_")]
    return {name.strip().strip("`"): default.strip() for name, default in rows}


def test_the_readme_settings_table_is_the_declared_settings():
    assert _readme_settings() == {s.env: s.shown for s in SETTINGS}


def test_every_environment_variable_the_product_reads_is_declared():
    declared = {s.env for s in SETTINGS}
    named = set()
    for folder in ("src/dtsen", "dags"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            if path.name == "config.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                is_env = isinstance(node, ast.Attribute) and node.attr == "environ"
                if is_env or (isinstance(node, ast.Name) and node.id == "getenv"):
                    named.add(f"{path.relative_to(PROJECT_ROOT)} reads the environment directly")
            named |= {
                m for m in re.findall(r"\"(DTSEN_[A-Z_]+)\"", path.read_text()) if m not in declared
            } - {"DTSEN_WAREHOUSE_PASSWORD"}  # a compose secret, checked by `dtsen check-deployment`
    # the only direct readers: check-deployment (handed the environment to check it) and the webhook
    # secrets, whose variable names come from config/subscribers.json
    assert named == {
        "src/dtsen/cli.py reads the environment directly",
        "src/dtsen/notify/subscribers.py reads the environment directly",
    }, named


def test_every_setting_has_a_usable_default():
    assert settings().quality_gate_threshold == 0.20


def _locked(lock: str) -> set[str]:
    text = (PROJECT_ROOT / lock).read_text()
    return {line.split("==")[0] for line in text.splitlines() if re.match(r"^[a-z0-9]", line)}


def test_the_production_lock_holds_no_development_tool_and_the_dev_lock_adds_them():
    production, development = _locked("requirements.lock"), _locked("requirements-dev.lock")
    assert not production & set(DEV_TOOLS)
    assert set(DEV_TOOLS) <= development and production <= development


def test_the_model_fitting_library_is_a_product_dependency_pinned_in_both_locks():
    """`dtsen model fit` runs in the image: scikit-learn (and what it needs) is in the production lock,
    and the development environment has exactly the locked version."""
    import importlib.metadata

    production, development = _locked("requirements.lock"), _locked("requirements-dev.lock")
    assert {"scikit-learn", "joblib", "threadpoolctl"} <= production <= development
    pinned = re.search(r"^scikit-learn==(\S+)", (PROJECT_ROOT / "requirements.lock").read_text(), re.M)
    assert pinned and importlib.metadata.version("scikit-learn") == pinned.group(1)
    assert "statsmodels" not in development


def test_the_image_installs_the_production_lock_and_only_the_product():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile and "requirements-dev" not in dockerfile
    copied = re.findall(r"^COPY (\S+) ", dockerfile, re.M)
    assert "src/dtsen" in copied and not any(c in ("src", "data", "src/dtsen_dev") for c in copied)
    assert "data/sample" not in dockerfile  # no ground truth in the image


def test_the_product_never_imports_the_development_tooling():
    for folder in ("src/dtsen", "dags", "plugins"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            assert "dtsen_dev" not in path.read_text(), path
