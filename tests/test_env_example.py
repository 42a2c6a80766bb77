"""`.env.example` stays true: every RAKUTEN_ variable it documents is a real setting, and the reverse;
every variable docker-compose.yml reads is documented, and set when the full stack requires it."""

import re
from pathlib import Path

from core.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _documented() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.lstrip("# ").strip()
        if "=" in line and line.split("=", 1)[0].isupper():
            names.add(line.split("=", 1)[0])
    return names


def test_documented_platform_variables_are_settings() -> None:
    fields = {f"RAKUTEN_{name.upper()}" for name in Settings.model_fields}
    documented = {n for n in _documented() if n.startswith("RAKUTEN_")}
    assert documented <= fields, documented - fields
    undocumented = (
        fields
        - documented
        - {
            "RAKUTEN_ROOT",
            "RAKUTEN_INTERIM_DIR",
            "RAKUTEN_PROCESSED_DIR",
            "RAKUTEN_MODELS_DIR",
            "RAKUTEN_CACHE_DIR",
            "RAKUTEN_REPORTS_DIR",
            "RAKUTEN_MLFLOW_TRACKING_URI",
            "RAKUTEN_MLFLOW_TRACKING_USERNAME",  # MLflow's own variables, set per service by compose
            "RAKUTEN_MLFLOW_TRACKING_PASSWORD",
            "RAKUTEN_MLFLOW_AUTH_CONFIG_PATH",
            "RAKUTEN_PREFECT_API_URL",
        }
    )
    assert not undocumented, undocumented


def test_full_stack_variables_are_documented_with_placeholders() -> None:
    documented = _documented()
    for name in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_S3_ENDPOINT_URL",
        "MINIO_ROOT_PASSWORD",
        "MINIO_MLFLOW_SECRET_KEY",
        "MINIO_DVC_SECRET_KEY",
        "MINIO_API_SECRET_KEY",
        "POSTGRES_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "RAKUTEN_API_ADMIN_TOKEN",
        "PREFECT_API_URL",
    ):
        assert name in documented, name
    text = (ROOT / ".env.example").read_text()
    for line in text.splitlines():
        if any(k in line for k in ("PASSWORD=", "SECRET", "TOKEN=")) and not line.startswith("#"):
            assert "replace-with" in line, line


def test_every_variable_the_full_stack_reads_is_documented() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    read = set(re.findall(r"(?<!\$)\$\{(\w+)", compose))  # `$${X}` is the container's own variable
    assert read and not read - _documented(), read - _documented()
    required = set(re.findall(r"(?<!\$)\$\{(\w+):\?", compose))
    lines = (ROOT / ".env.example").read_text().splitlines()
    assigned = {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}
    # `cp .env.example .env` gives every required one a value (a placeholder to replace)
    assert required <= assigned, required - assigned
    assert {"RAKUTEN_OIDC_CLIENT_SECRET", "RAKUTEN_OIDC_COOKIE_SECRET", "KEYCLOAK_DEMO_PASSWORD"} <= required
