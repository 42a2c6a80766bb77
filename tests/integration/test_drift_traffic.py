"""Drift as users produce it: `python -m core simulate` replays held-back products against a real
`python -m core serve` process, `python -m core drift` reports on what the API logged — unshifted
traffic shows no drift, shifted traffic does — and the API's /metrics exports each decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import _free_port
from tests.integration.test_api_server import Server, start_server, stop_server

pytestmark = pytest.mark.slow


Stack = tuple[Server, dict[str, str]]


@pytest.fixture(scope="module")
def stack(trained_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API on the session's trained project, its inference log and drift reports kept apart."""
    here = tmp_path_factory.mktemp("drift-traffic")
    env = {
        "RAKUTEN_INFERENCE_LOG_URL": f"sqlite:///{here / 'inference.db'}",
        "RAKUTEN_REPORTS_DIR": str(here / "reports"),
    }
    server = start_server(trained_source, here / "api.log", alias_check_s=0, env=env)
    try:
        yield server, env | {"RAKUTEN_ROOT": str(trained_source), "RAKUTEN_API_URL": server.url}
    finally:
        stop_server(server)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        env=clean | env | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(f"{name} ")))


def test_unshifted_then_shifted_traffic(stack: Stack) -> None:
    server, env = stack
    assert metric(server, "rakuten_drift_report_available") == 0.0

    sent = cli(env, "simulate", "--n", "244", "--clients", "4")
    assert sent.returncode == 0 and "244 answered, 0 failed" in sent.stderr, sent.stderr[-2000:]
    calm = cli(env, "drift")
    assert calm.returncode == 0, calm.stderr[-3000:]
    assert "no drift" in calm.stderr and "244 predictions" in calm.stderr
    assert metric(server, "rakuten_drift_detected") == 0.0

    shifted = cli(env, "simulate", "--n", "244", "--drifted", "--seed", "1")
    assert shifted.returncode == 0 and "descriptions emptied" in shifted.stderr, shifted.stderr[-2000:]
    drifted = cli(env, "drift", "--rows", "244")  # the shifted requests only
    assert drifted.returncode == 0, drifted.stderr[-3000:]
    assert "drift detected" in drifted.stderr and "image_brightness" in drifted.stderr
    assert metric(server, "rakuten_drift_detected") == 1.0
    assert metric(server, "rakuten_drift_share") >= 0.5

    index = json.loads((Path(env["RAKUTEN_REPORTS_DIR"]) / "evidently" / "index.json").read_text())
    assert [e["drift_detected"] for e in index] == [True, False]


def test_simulate_against_no_api_is_a_clear_error(stack: Stack) -> None:
    _, env = stack
    down = cli(env, "simulate", "--n", "5", "--url", f"http://127.0.0.1:{_free_port()}")
    assert down.returncode == 2 and "Error" in down.stderr, down.stderr[-2000:]
    assert "Traceback" not in down.stderr


def test_labelled_traffic_reports_classification_quality(stack: Stack, tmp_path: Path) -> None:
    """`simulate --labelled` sends held-out products with their own request ids and writes their true
    classes; `drift --labels` joins them to what the API logged and reports the weighted F1."""
    _, env = stack
    labels = tmp_path / "labels.csv"
    sent = cli(env, "simulate", "--n", "250", "--labelled", "--labels-out", str(labels), "--seed", "5")
    assert sent.returncode == 0 and labels.is_file(), sent.stderr[-2000:]
    assert f"--labels {labels}" in sent.stderr
    report = cli(env, "drift", "--rows", "250", "--labels", str(labels))
    assert report.returncode == 0, report.stderr[-3000:]
    assert "weighted F1 on 250 labelled predictions" in report.stderr
