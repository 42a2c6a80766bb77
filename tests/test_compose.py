"""The full stack's files stay valid and safe without a Docker engine: docker-compose.yml passes the
Compose JSON schema and `docker-compose config -q` with `.env.example`, fails fast without a required
secret, publishes only on 127.0.0.1 by default, health-checks and orders its services, pins its
images; the Dockerfile is multi-stage, pinned and non-root; every mounted file exists. Scale-out: a
Dask scheduler (its dashboard on the bind address only) and scalable workers (no published port, no
container name) that the flows and batch scoring reach; the API runs as replicas behind an nginx proxy
that re-resolves them with Docker's DNS, and every client goes through it; Prometheus discovers every
replica by DNS and every Grafana query on the API aggregates over the replicas. Sign-in: a pinned,
health-checked Keycloak imports a realm whose demo users hold one role each through the groups that
`RAKUTEN_OIDC_ROLE_MAP` maps, whose client sends people back to the console and whose access tokens
name the API's audience; the console and the API, given the rendered environment, have every sign-in
setting they need (production rules included); no secret is written in the files."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from core.config import Settings
from core.identity.roles import Role, roles_from_claims
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
MONITORING = ROOT / "monitoring"
REALM_FILE = ROOT / "docker" / "keycloak" / "rakuten-realm.json"
LOOPBACK = "${BIND_ADDRESS:-127.0.0.1}"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _docker_compose() -> str:
    return require_tool("docker-compose", "v1, Debian: apt-get install docker-compose")


def test_compose_file_matches_the_compose_schema() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _config(tmp_path: Path, env: str, *, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text(env)
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAKUTEN_", "POSTGRES_", "AWS_", "MINIO_", "GRAFANA_", "KEYCLOAK_", "CONSOLE_"))
    }
    return subprocess.run(
        [_docker_compose(), "config", *(["-q"] if quiet else [])],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_compose_config_accepts_the_example_env(tmp_path: Path) -> None:
    done = _config(tmp_path, (ROOT / ".env.example").read_text())
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "secret",
    [
        "POSTGRES_PASSWORD",
        "MINIO_ROOT_PASSWORD",
        "MINIO_MLFLOW_SECRET_KEY",
        "MINIO_DVC_SECRET_KEY",
        "MINIO_API_SECRET_KEY",
        "GRAFANA_ADMIN_USER",
        "GRAFANA_ADMIN_PASSWORD",
        "RAKUTEN_OIDC_CLIENT_SECRET",
        "RAKUTEN_OIDC_COOKIE_SECRET",
        "CONSOLE_SERVICE_TOKEN",
        "KEYCLOAK_ADMIN_PASSWORD",
        "KEYCLOAK_DEMO_PASSWORD",
    ],
)
def test_a_missing_secret_fails_fast(tmp_path: Path, secret: str) -> None:
    env = "\n".join(
        line for line in (ROOT / ".env.example").read_text().splitlines() if not line.startswith(f"{secret}=")
    )
    done = _config(tmp_path, env)
    assert done.returncode != 0 and f"set {secret} in .env" in done.stderr, done.stderr


def test_only_loopback_ports_and_healthy_ordering() -> None:
    services = compose()["services"]
    expected = {
        "secrets-check",
        "postgres",
        "minio",
        "minio-buckets",
        "mlflow",
        "mlflow-users",
        "prefect-server",
        "prefect-worker",
        "dask-scheduler",
        "dask-worker",
        "api",
        "proxy",
        "console",
        "prometheus",
        "grafana",
        "keycloak",
    }
    assert set(services) == expected
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, port)
        # a one-shot job; a worker serves nothing (a Dask worker's liveness is its scheduler's business)
        if name not in {"secrets-check", "minio-buckets", "mlflow-users", "prefect-worker", "dask-worker"}:
            assert "healthcheck" in service, name
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services and rule["condition"].startswith("service_"), (name, dependency)
    assert services["api"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["minio-buckets"]["condition"] == "service_completed_successfully"
    assert set(compose()["volumes"]) >= {"pgdata", "minio", "data", "models", "reports", "grafana"}


def test_images_are_pinned_and_mounts_exist() -> None:
    for name, service in compose()["services"].items():
        image = service.get("image", "")
        if image and not image.startswith("rakuten-mlops:"):  # ours is built from the Dockerfile
            assert ":" in image and not image.endswith(":latest"), (name, image)
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, source)


def test_the_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", text)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1)), "pin the base image"
    assert len(re.findall(r"^FROM ", text, flags=re.M)) >= 2
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1] not in {"root", "0"}
    assert "requirements.txt" in text  # the pinned set, not a fresh resolve


def test_the_console_fails_fast_as_the_local_stack_s_does() -> None:
    from core.stack.programs import CONSOLE_ENVIRONMENT

    environment = compose()["services"]["console"]["environment"]
    assert {k: environment.get(k) for k in CONSOLE_ENVIRONMENT} == CONSOLE_ENVIRONMENT
    assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"  # the shared ones are kept


def test_dask_scheduler_and_scalable_workers() -> None:
    services = compose()["services"]
    scheduler, worker = services["dask-scheduler"], services["dask-worker"]
    assert scheduler["ports"] == [f"{LOOPBACK}:8787:8787"]  # the dashboard; 8786 stays inside the network
    assert "http://127.0.0.1:8787/health" in " ".join(scheduler["healthcheck"]["test"])
    assert scheduler["command"][:2] == ["dask", "scheduler"] and "8786" in scheduler["command"]
    # `docker compose up --scale dask-worker=N`: nothing published, no fixed name
    assert "ports" not in worker and "container_name" not in worker
    assert worker["deploy"]["replicas"] == "${DASK_WORKERS:-2}"
    command = [str(part) for part in worker["command"]]
    assert command[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert command[command.index("--nthreads") + 1] == "1" and "--memory-limit" in command
    assert worker["environment"]["OMP_NUM_THREADS"] == "1"
    assert worker["image"] == scheduler["image"] == services["api"]["image"]  # the platform's code
    assert {"data:/app/data", "models:/app/models", "reports:/app/reports"} <= set(worker["volumes"])
    assert {k: v["condition"] for k, v in worker["depends_on"].items()} == {
        "dask-scheduler": "service_healthy",
        "mlflow": "service_healthy",
    }
    for name in ("prefect-worker", "console"):  # training flows and batch scoring run on the cluster
        assert services[name]["environment"]["RAKUTEN_DASK_ADDRESS"] == "tcp://dask-scheduler:8786", name
        assert services[name]["depends_on"]["dask-scheduler"]["condition"] == "service_healthy", name
    assert "RAKUTEN_DASK_ADDRESS" not in services["api"]["environment"]


def test_api_replicas_behind_the_proxy() -> None:
    services = compose()["services"]
    api, proxy = services["api"], services["proxy"]
    assert "ports" not in api and "container_name" not in api
    assert api["deploy"]["replicas"] == "${API_REPLICAS:-2}" and "healthcheck" in api
    assert proxy["ports"] == [f"{LOOPBACK}:8000:8000"]
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    assert "/proxy-health" in " ".join(proxy["healthcheck"]["test"])
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in proxy["volumes"]}
    config = (ROOT / mounts["/etc/nginx/conf.d/default.conf"]).read_text()
    config = re.sub(r"#.*", "", config)
    assert re.search(r"\blisten\s+8000;", config)
    # a variable upstream: Docker's DNS is asked again, so every replica (and a new one) gets requests
    assert re.search(r"\bresolver\s+127\.0\.0\.11\b[^;]*\bvalid=\d+s", config)
    assert re.search(r"set\s+\$api\s+http://api:8000;", config) and "proxy_pass $api;" in config
    for header in ("Host", "X-Request-ID", "X-Forwarded-For"):
        assert re.search(rf"proxy_set_header\s+{header}\s", config), header
    assert re.search(r"location\s*=\s*/proxy-health", config)
    # clients go through the proxy: nothing in the stack calls one replica directly
    assert "http://api:8000" not in COMPOSE.read_text()
    assert compose()["x-platform"]["environment"]["RAKUTEN_API_URL"] == "http://proxy:8000"
    assert services["console"]["depends_on"]["proxy"]["condition"] == "service_healthy"


def test_prometheus_discovers_every_api_replica() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["rakuten-api"]  # the name alerts and dashboards select on
    assert "static_configs" not in api
    assert [(d["names"], d["type"], d["port"]) for d in api["dns_sd_configs"]] == [(["api"], "A", 8000)]
    assert jobs["dask"]["static_configs"] == [{"targets": ["dask-scheduler:8787"]}]
    assert jobs["dask"].get("metrics_path", "/metrics") == "/metrics"


_AGGREGATIONS = {"sum", "max", "min", "count", "avg", "topk", "bottomk", "quantile", "count_values", "group"}


def _aggregated(expr: str) -> bool:
    """Every `{job="rakuten-api"}` selector of `expr` lies inside an aggregation over instances."""
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    stack: list[str] = []
    selectors = 0
    for i, char in enumerate(expr):
        if char == "(":
            name = re.search(r"([a-z_]*)\s*$", expr[:i])
            stack.append(name.group(1) if name else "")
        elif char == ")":
            stack.pop()
        elif expr.startswith('job="rakuten-api"', i):
            selectors += 1
            if not _AGGREGATIONS & set(stack):
                return False
    return selectors > 0


def test_the_aggregation_check_sees_a_bare_series() -> None:
    assert not _aggregated('up{job="rakuten-api"}')
    assert not _aggregated(
        'rate(http_requests_total{job="rakuten-api"}[5m]) / sum(rate(x{job="rakuten-api"}[5m]))'
    )
    assert _aggregated('histogram_quantile(0.9, sum by (le) (rate(h_bucket{job="rakuten-api"}[5m])))')
    assert _aggregated('time() - max(rakuten_drift_report_timestamp_seconds{job="rakuten-api"})')


def test_every_dashboard_query_aggregates_over_the_api_replicas() -> None:
    targets = {}
    for path in sorted((MONITORING / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                targets[f"{path.stem}: {panel['title']} [{target['refId']}]"] = target["expr"]
    on_api = {name: expr for name, expr in targets.items() if 'job="rakuten-api"' in expr}
    assert len(on_api) >= 15
    bare = [name for name, expr in on_api.items() if not _aggregated(expr)]
    assert not bare, f"per-instance series (one line per replica): {bare}"
    assert on_api["rakuten-api: API replicas up [A]"] == 'sum(up{job="rakuten-api"})'
    # a replica without a model is what to see
    assert on_api["rakuten-api: Model loaded [A]"].startswith("min(")


# --- sign-in: the identity provider, its realm, and the settings the console and the API get ------------


def realm() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REALM_FILE.read_text())
    return data


def _client(name: str = "rakuten-console") -> dict[str, Any]:
    (client,) = [c for c in realm()["clients"] if c["clientId"] == name]
    return client


def _mapper(kind: str) -> dict[str, str]:
    (mapper,) = [m for m in _client()["protocolMappers"] if m["protocolMapper"] == kind]
    config: dict[str, str] = mapper["config"]
    return config


def _host_port(service: dict[str, Any]) -> str:
    """The published port of a service publishing one (`${BIND_ADDRESS:-127.0.0.1}:HOST:CONTAINER`)."""
    (port,) = service["ports"]
    return str(port).split(":")[-2]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`docker-compose config` with `.env.example` made real: production, every placeholder a fresh secret.
    The environment each container gets (its `env_file` included)."""
    from core.credentials import generate

    fresh = generate()  # as `python -m core secrets generate` makes them
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("RAKUTEN_ENVIRONMENT="):
            line = "RAKUTEN_ENVIRONMENT=production"
        elif not line.startswith("#") and "=replace-with" in line:
            name = line.split("=", 1)[0]
            value = fresh.get(name) or secrets.token_urlsafe(32)
            line = f"{name}={'rkt_' + value if name == 'CONSOLE_SERVICE_TOKEN' else value}"
        lines.append(line)
    folder = tmp_path_factory.mktemp("rendered")
    done = _config(folder, "\n".join(lines) + "\n", quiet=False)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = yaml.safe_load(done.stdout)
    return data


def _settings_of(service: dict[str, Any]) -> Settings:
    """The Settings a container of this service builds (its environment only, no `.env` file)."""
    environment = {k: str(v) for k, v in service["environment"].items()}
    with mock.patch.dict(os.environ, environment, clear=True):
        return Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_identity_provider_is_pinned_health_checked_and_imports_the_realm() -> None:
    services = compose()["services"]
    keycloak = services["keycloak"]
    assert re.fullmatch(r"quay\.io/keycloak/keycloak:\d+\.\d+\.\d+", keycloak["image"]), keycloak["image"]
    assert keycloak["command"][0] in {"start", "start-dev"} and "--import-realm" in keycloak["command"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in keycloak["volumes"]}
    assert (ROOT / mounts["/opt/keycloak/data/import/rakuten-realm.json"]) == REALM_FILE
    assert keycloak["ports"] == [f"{LOOPBACK}:8080:8080"]
    environment = keycloak["environment"]
    # the issuer is the browser's address; containers use the back channel at keycloak:8080
    assert environment["KC_HOSTNAME"] == f"http://localhost:{_host_port(keycloak)}"
    assert environment["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true"
    assert environment["KC_HEALTH_ENABLED"] == "true"
    test = " ".join(keycloak["healthcheck"]["test"])
    assert "/health/ready" in test and "/9000" in test  # the management port
    assert keycloak["depends_on"]["postgres"]["condition"] == "service_healthy"
    database = environment["KC_DB_URL"].rsplit("/", 1)[1]
    assert f"CREATE DATABASE {database};" in (ROOT / "docker" / "postgres-init.sql").read_text()
    assert environment["KC_BOOTSTRAP_ADMIN_PASSWORD"].startswith("${KEYCLOAK_ADMIN_PASSWORD:?")
    # every placeholder of the realm file is given, from .env, required
    placeholders = set(re.findall(r"\$\{(\w+)\}", REALM_FILE.read_text()))
    assert placeholders == {"RAKUTEN_OIDC_CLIENT_SECRET", "KEYCLOAK_DEMO_PASSWORD"}
    for name in placeholders:
        assert environment[name].startswith(f"${{{name}:?"), name
    for name in ("console", "api"):  # no sign-in, no console; no key set, no access token verified
        assert services[name]["depends_on"]["keycloak"]["condition"] == "service_healthy", name


def test_the_realm_has_one_demo_user_per_role() -> None:
    data = realm()
    defaults = _settings_of({"environment": {}})
    assert data["realm"] == "rakuten" and data["enabled"]
    groups = {g["name"] for g in data["groups"]}
    assert groups == set(defaults.oidc_role_map)  # each group maps to a role, each mapped name exists
    held: dict[str, str] = {}
    for user in data["users"]:
        names = [path.rsplit("/", 1)[-1] for path in user["groups"]]  # the claim carries names, not paths
        roles = roles_from_claims({"groups": names}, defaults.oidc_roles_claim, defaults.oidc_role_map)
        assert len(roles) == 1, (user["username"], roles)
        held[user["username"]] = next(iter(roles))
        # a complete profile (no form to fill at the first sign-in), a password from the environment
        assert user["enabled"] and user["emailVerified"] and user["email"] and user["firstName"], user
        assert user["credentials"] == [
            {"type": "password", "value": "${KEYCLOAK_DEMO_PASSWORD}", "temporary": False}
        ]
    assert held == {role.value: role for role in Role}  # viewer, reviewer, operator, admin: one each


def test_the_console_client_sends_people_back_to_the_console() -> None:
    client = _client()
    services = compose()["services"]
    console = services["console"]
    assert client["publicClient"] is False and client["secret"] == "${RAKUTEN_OIDC_CLIENT_SECRET}"
    assert client["standardFlowEnabled"] is True  # the standard flow, and nothing else
    for flow in ("implicitFlowEnabled", "directAccessGrantsEnabled", "serviceAccountsEnabled"):
        assert client[flow] is False, flow
    environment = console["environment"]
    assert client["redirectUris"] == [environment["RAKUTEN_OIDC_REDIRECT_URI"]]
    assert (
        environment["RAKUTEN_OIDC_REDIRECT_URI"] == f"http://localhost:{_host_port(console)}/oauth2callback"
    )
    assert environment["RAKUTEN_OIDC_CLIENT_ID"] == client["clientId"]
    # the console's start command writes st.login's secrets and refuses to serve beyond loopback without them
    command = [str(part) for part in console["command"]]
    assert command[:3] == ["python", "-m", "core.ui.serve"] and "--server.address=0.0.0.0" in command
    assert f"--server.port={_host_port(console)}" in command


def test_tokens_carry_the_groups_and_the_api_audience() -> None:
    groups = _mapper("oidc-group-membership-mapper")
    assert groups["claim.name"] == _settings_of({"environment": {}}).oidc_roles_claim
    assert groups["full.path"] == "false"
    for token in ("id.token.claim", "access.token.claim", "userinfo.token.claim"):
        assert groups[token] == "true", token
    audience = _mapper("oidc-audience-mapper")
    api = compose()["services"]["api"]["environment"]
    assert [audience["included.custom.audience"]] == json.loads(api["RAKUTEN_OIDC_AUDIENCE"])
    assert audience["access.token.claim"] == "true"


def test_the_console_has_every_sign_in_setting(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    console = _settings_of(services["console"])  # raises on a placeholder or a short cookie secret
    assert console.environment == "production"
    assert console.sign_in and console.sign_in_missing == []
    assert console.oidc_server_metadata_url == (
        "http://keycloak:8080/realms/rakuten/.well-known/openid-configuration"
    )
    assert console.console_redirect_uri in realm()["clients"][0]["redirectUris"]
    # the same secret on both sides of the client
    secret = console.oidc_client_secret
    assert secret is not None
    assert secret.get_secret_value() == services["keycloak"]["environment"]["RAKUTEN_OIDC_CLIENT_SECRET"]
    assert console.token is not None and console.token.get_secret_value().startswith("rkt_")


def test_the_api_checks_the_browser_s_issuer_and_its_audience(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    api = _settings_of(services["api"])
    console = _settings_of(services["console"])
    issuer = services["keycloak"]["environment"]["KC_HOSTNAME"] + "/realms/" + realm()["realm"]
    assert api.oidc_issuer == issuer == "http://localhost:8080/realms/rakuten"
    assert api.api_audiences == ["rakuten-api"]
    assert api.oidc_server_metadata_url == console.oidc_server_metadata_url
    assert api.oidc_client_id == console.oidc_client_id
    # the service tokens live on a named volume: every replica reads, `python -m core token` writes
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in compose()["services"]["api"]["volumes"]}
    folder = str(api.service_tokens_file.parent)
    assert folder in mounts and mounts[folder] in compose()["volumes"], (folder, mounts)
    assert "RAKUTEN_TOKEN" not in services["api"]["environment"]  # the console's token is the console's


def test_break_glass_tokens_are_optional_and_no_secret_is_written_down() -> None:
    text = COMPOSE.read_text()
    example = (ROOT / ".env.example").read_text()
    for name in ("RAKUTEN_API_ADMIN_TOKEN", "RAKUTEN_CONSOLE_ADMIN_TOKEN"):
        assert f"${{{name}:?" not in text, name  # break-glass: set in .env when wanted
        assert f"\n# {name}=replace-with" in example and f"\n{name}=" not in example, name
    assert "RAKUTEN_REVIEW_TOKEN" not in text + example  # replaced by the reviewer role
    for name, value in compose()["services"]["console"]["environment"].items():
        if "SECRET" in name or "TOKEN" in name:  # required from .env, blanked, or its own break-glass
            optional = f"${{{name}:-}}" if name == "RAKUTEN_CONSOLE_ADMIN_TOKEN" else None
            assert str(value) in ("", optional) or (str(value).startswith("${") and ":?" in str(value)), name


# --- secrets: every one required, checked before anything starts, and each service holds only its own ---
def _reaches(services: dict[str, Any], name: str, target: str) -> bool:
    seen, todo = set(), [name]
    while todo:
        for dependency in services[todo.pop()].get("depends_on") or {}:
            if dependency == target:
                return True
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return False


def test_every_secret_is_required_and_checked_before_anything_starts() -> None:
    from core.credentials import SECRETS, is_secret_name

    text = COMPOSE.read_text()
    read = {m.group(1): m.group(2) for m in re.finditer(r"(?<!\$)\$\{(\w+)(:?[?-]?)", text)}
    secret_vars = {name for name in read if is_secret_name(name)}
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= secret_vars
    optional = {s.name for s in SECRETS if not s.required}  # break-glass: unset unless wanted
    defaulted = sorted(
        name
        for name in secret_vars
        for suffix in re.findall(rf"(?<!\$)\$\{{{name}([^}}]*)\}}", text)
        if not (suffix.startswith(":?") or (name in optional and suffix == ":-"))
    )  # every use of a secret is `${NAME:?…}`, an optional one `${NAME:-}` too: never a default value
    assert not defaulted, defaulted
    services = compose()["services"]
    gate = services["secrets-check"]
    assert gate["command"] == ["python", "-m", "core", "secrets", "check"]
    assert gate["restart"] == "no" and gate["environment"]["RAKUTEN_ENVIRONMENT"].endswith(":-production}")
    assert secret_vars <= set(gate["environment"]), secret_vars - set(gate["environment"])
    assert {s.name for s in SECRETS if s.required} <= set(gate["environment"])
    # nothing starts before it has passed
    for name in set(services) - {"secrets-check"}:
        assert _reaches(services, name, "secrets-check"), name
    for name in ("postgres", "minio", "minio-buckets", "keycloak", "grafana", "dask-scheduler"):
        assert services[name]["depends_on"]["secrets-check"]["condition"] == "service_completed_successfully"


def test_every_container_s_secrets_are_ones_the_gate_checked(rendered: dict[str, Any]) -> None:
    """A secret-named variable any container gets (its env_file included) is blank or a value the gate
    refused to let through as a placeholder: no secret reaches a service unchecked."""
    from core.credentials import is_secret_name, refusals

    services = rendered["services"]
    gate = {k: str(v) for k, v in services["secrets-check"]["environment"].items()}
    assert refusals(gate) == {}  # generated values pass
    checked = {value for name, value in gate.items() if is_secret_name(name)}
    unchecked = {
        (service, name)
        for service, config in services.items()
        for name, value in (config.get("environment") or {}).items()
        if (is_secret_name(name) or name.endswith("SECRET_ACCESS_KEY"))
        and str(value or "") not in checked | {""}
    }
    assert not unchecked, sorted(unchecked)


def test_the_secrets_check_names_every_placeholder_of_the_example(tmp_path: Path) -> None:
    from core.credentials import is_secret_name

    example = (
        (ROOT / ".env.example")
        .read_text()
        .replace("RAKUTEN_ENVIRONMENT=local", "RAKUTEN_ENVIRONMENT=production")
    )
    placeholders = {
        line.split("=", 1)[0]
        for line in example.splitlines()
        if not line.startswith("#") and "=replace-with" in line
    }
    assert placeholders and all(is_secret_name(name) for name in placeholders), placeholders
    (tmp_path / "example.env").write_text(example)
    cli = [sys.executable, "-m", "core", "secrets"]
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [*cli, "check", "--env-file", str(tmp_path / "example.env")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    named = {line.split()[0] for line in done.stderr.splitlines() if line and line.split()[0].isupper()}
    assert placeholders <= named, placeholders - named
    # the same file with `secrets generate`'s values (and a service token) passes
    fresh = subprocess.run([*cli, "generate"], capture_output=True, text=True, env=env, timeout=60)
    values = dict(line.split("=", 1) for line in fresh.stdout.splitlines() if not line.startswith("#"))
    assert values and set(values) <= placeholders and len(set(values.values())) == len(values)
    values["CONSOLE_SERVICE_TOKEN"] = "rkt_" + secrets.token_urlsafe(32)
    lines = [
        f"{line.split('=', 1)[0]}={values[line.split('=', 1)[0]]}"
        if "=replace-with" in line and not line.startswith("#")
        else line
        for line in example.splitlines()
    ]
    (tmp_path / "fresh.env").write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [*cli, "check", "--env-file", str(tmp_path / "fresh.env")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_grafana_has_no_default_administrator_and_no_anonymous_access() -> None:
    environment = compose()["services"]["grafana"]["environment"]
    for name in ("GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"):
        assert environment[name].startswith("${") and ":?" in environment[name], name
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert environment["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_only_minio_and_its_one_shot_hold_the_root_keys(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    root = services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
    holders = {
        name
        for name, service in services.items()
        if root in {str(v) for v in (service.get("environment") or {}).values()}
    }
    assert holders == {"minio", "minio-buckets", "secrets-check"}, (
        holders
    )  # the gate checks it, holds no S3 client
    keys = {
        name: str((service.get("environment") or {}).get("AWS_SECRET_ACCESS_KEY") or "")
        for name, service in services.items()
    }
    gate = services["secrets-check"]["environment"]
    assert keys["mlflow"] == gate["MINIO_MLFLOW_SECRET_KEY"]
    assert keys["api"] == gate["MINIO_API_SECRET_KEY"]
    assert keys["prefect-worker"] == keys["dask-worker"] == gate["MINIO_DVC_SECRET_KEY"]
    for name in ("console", "prefect-server", "dask-scheduler"):
        assert keys[name] == "", name


# --- MLflow and Prefect sign-in (core/tracking/server_auth.py, tests/integration/test_server_auth.py) ----

_PLATFORM = ("mlflow", "mlflow-users", "prefect-server", "prefect-worker", "dask-worker", "api", "console")


def test_mlflow_runs_basic_auth_and_the_api_reads_only(rendered: dict[str, Any]) -> None:
    services = rendered["services"]
    mlflow = services["mlflow"]
    command = [str(part) for part in mlflow["command"]]
    assert command[:2] == ["/bin/sh", "-c"]
    assert command[2].replace("$$", "$") == 'python -m core mlflow-auth config && exec "$@"'
    server = command[4:]  # after $0: the server's own arguments, never through the shell
    assert server[:2] == ["mlflow", "server"] and "--serve-artifacts" in server
    # workspaces on: an account that is not the administrator can create nothing
    assert {"--app-name=basic-auth", "--enable-workspaces"} <= set(server)
    environment = mlflow["environment"]
    assert environment["MLFLOW_AUTH_CONFIG_PATH"].endswith(".ini")
    assert environment["RAKUTEN_MLFLOW_AUTH_DATABASE_URI"].endswith("@postgres:5432/mlflow_auth")
    assert "CREATE DATABASE mlflow_auth;" in (ROOT / "docker" / "postgres-init.sql").read_text()
    assert environment["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])  # open without credentials (tested)
    trainer = (environment["MLFLOW_TRACKING_USERNAME"], environment["MLFLOW_TRACKING_PASSWORD"])
    assert trainer[0] and trainer[1]
    # the users are made once the server is healthy, before the api starts
    users = services["mlflow-users"]
    assert users["command"] == ["python", "-m", "core", "mlflow-auth", "users"]
    assert users["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["mlflow-users"]["condition"] == "service_completed_successfully"
    reader = (
        users["environment"]["RAKUTEN_MLFLOW_READER_USERNAME"],
        users["environment"]["RAKUTEN_MLFLOW_READER_PASSWORD"],
    )
    api = services["api"]["environment"]
    assert (api["MLFLOW_TRACKING_USERNAME"], api["MLFLOW_TRACKING_PASSWORD"]) == reader != trainer
    for name in ("mlflow-users", "prefect-worker", "dask-worker", "console"):  # they train and register
        environment = services[name]["environment"]
        assert (environment["MLFLOW_TRACKING_USERNAME"], environment["MLFLOW_TRACKING_PASSWORD"]) == trainer
    # the sources in .env reach no container (env_file hands every variable to every one)
    for name in _PLATFORM:
        environment = services[name]["environment"]
        for source in ("MLFLOW_TRAINER_PASSWORD", "MLFLOW_READER_PASSWORD", "PREFECT_AUTH_STRING"):
            assert environment[source] == "", (name, source)
        if name != "mlflow":
            assert environment["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "", name


def test_the_prefect_server_requires_its_auth_string_and_every_client_sends_it(
    rendered: dict[str, Any],
) -> None:
    services = rendered["services"]
    server = services["prefect-server"]["environment"]
    auth = server["PREFECT_SERVER_API_AUTH_STRING"]
    assert auth
    assert "/api/health" in " ".join(services["prefect-server"]["healthcheck"]["test"])  # open (tested)
    for name in ("prefect-worker", "console", "dask-worker"):
        environment = services[name]["environment"]
        assert environment["PREFECT_API_URL"] == "http://prefect-server:4200/api", name
        assert environment["PREFECT_API_AUTH_STRING"] == auth, name
        assert environment["PREFECT_API_KEY"] == "", name  # Prefect Cloud's key would replace the auth string
    for name in ("api", "mlflow", "mlflow-users", "prefect-server"):  # not Prefect clients
        assert services[name]["environment"]["PREFECT_API_AUTH_STRING"] == "", name


@pytest.mark.parametrize(
    "secret",
    [
        "MLFLOW_TRAINER_PASSWORD",
        "MLFLOW_READER_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "PREFECT_AUTH_STRING",
    ],
)
def test_a_missing_sign_in_secret_fails_fast(tmp_path: Path, secret: str) -> None:
    env = "\n".join(
        line for line in (ROOT / ".env.example").read_text().splitlines() if not line.startswith(f"{secret}=")
    )
    done = _config(tmp_path, env)
    assert done.returncode != 0 and f"set {secret} in .env" in done.stderr, done.stderr
