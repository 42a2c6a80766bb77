"""No credential is ever logged or sent to MLflow: on the session's local stack (its API holding a known
break-glass admin token), a service token made with `python -m core token create` predicts, a wrong
token is refused, the admin token reloads, and a training runs on the stack's worker with the service
token in its launcher's environment. Then every file the stack wrote under `.stack/` (its programs'
logs), the Prefect server's, MLflow's and the audit trail's databases, and every param, tag and metric
name of every MLflow run, registered model and model version are read: none holds a secret, nor its
first 12 characters."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Console
from tests.integration.test_api_server import TOKEN

pytestmark = pytest.mark.slow


def _cli(
    console: Console, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env |= console.env | {"COLUMNS": "200"} | (extra or {})
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=console.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _texts(console: Console) -> Iterator[tuple[str, bytes]]:
    """Every file the stack's programs wrote: logs, supervisor state, the databases."""
    root = console.root
    folders = [root / ".stack", root / ".prefect"]
    files = [path for folder in folders if folder.is_dir() for path in folder.rglob("*") if path.is_file()]
    files += [root / "mlflow.db", *sorted((root / "data").glob("*.db*"))]
    for path in files:
        if path.is_file():
            yield str(path.relative_to(root)), path.read_bytes()


def _mlflow_strings(root: Path) -> Iterator[tuple[str, str]]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiments = client.search_experiments()
    for run in client.search_runs([e.experiment_id for e in experiments], max_results=1000):
        where = f"run {run.info.run_id}"
        for key, value in {**run.data.params, **run.data.tags}.items():
            yield where, f"{key}={value}"
        for key in run.data.metrics:
            yield where, key
    for model in client.search_registered_models():
        for key, value in (model.tags or {}).items():
            yield f"model {model.name}", f"{key}={value}"
        for version in client.search_model_versions(f"name='{model.name}'"):
            where = f"model {model.name} v{version.version}"
            yield where, version.description or ""
            for key, value in (version.tags or {}).items():
                yield where, f"{key}={value}"


def test_no_secret_reaches_a_log_or_mlflow(console: Console) -> None:
    made = _cli(console, "token", "create", "leak-check", "--role", "operator")
    assert made.returncode == 0, made.stderr
    service_token = made.stdout.strip()
    wrong = "rkt_" + secrets.token_urlsafe(32)
    api = httpx.Client(base_url=console.api_url, timeout=60)

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    predicted = api.post("/predict", json={"designation": "Piscine Intex"}, headers=bearer(service_token))
    assert predicted.status_code == 200, predicted.text
    refused = api.post("/admin/reload", headers=bearer(wrong))
    assert refused.status_code == 401, refused.text
    reloaded = api.post("/admin/reload", headers=bearer(TOKEN))
    assert reloaded.status_code == 200, reloaded.text
    # a training on the stack's worker (logged to MLflow), launched with the service token as RAKUTEN_TOKEN
    trained = _cli(console, "flow", "start", extra={"RAKUTEN_TOKEN": service_token})
    assert trained.returncode in (0, 3), trained.stderr[-3000:]  # 3: one already running (followed below)

    found = []
    for secret in (service_token, wrong, TOKEN):
        for needle in {secret, secret[:12]}:
            for where, data in _texts(console):
                if needle.encode() in data:
                    found.append((needle[:6] + "…", where))
            for where, text in _mlflow_strings(console.root):
                if needle in text:
                    found.append((needle[:6] + "…", where))
    assert not found, found
