"""The full stack's files stay valid and safe without a Docker engine: docker-compose.yml passes the
Compose JSON schema and `docker-compose config -q` with `.env.example`, fails fast without a required
secret, publishes only on 127.0.0.1 by default, health-checks and orders its services, pins its
images; the Dockerfile is multi-stage, pinned and non-root; every mounted file exists. Scale-out: a
Dask scheduler (its dashboard on the bind address only) and scalable workers (no published port, no
container name) that the flows and batch scoring reach; the API runs as replicas behind an nginx proxy
that re-resolves them with Docker's DNS, and every client goes through it; Prometheus discovers every
replica by DNS and every Grafana query on the API aggregates over the replicas."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
MONITORING = ROOT / "monitoring"
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


def _config(tmp_path: Path, env: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text(env)
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "POSTGRES_", "AWS_", "GRAFANA_"))
    }
    return subprocess.run(
        [_docker_compose(), "config", "-q"],
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
    ["POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY", "GRAFANA_ADMIN_PASSWORD", "RAKUTEN_API_ADMIN_TOKEN"],
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
        "postgres",
        "minio",
        "minio-buckets",
        "mlflow",
        "prefect-server",
        "prefect-worker",
        "dask-scheduler",
        "dask-worker",
        "api",
        "proxy",
        "console",
        "prometheus",
        "grafana",
    }
    assert set(services) == expected
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, port)
        # a one-shot job; a worker serves nothing (a Dask worker's liveness is its scheduler's business)
        if name not in {"minio-buckets", "prefect-worker", "dask-worker"}:
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
