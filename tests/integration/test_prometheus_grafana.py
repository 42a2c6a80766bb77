"""Monitoring as deployed: a real Prometheus (monitoring/prometheus.yml and alerts.yml, the API target
and intervals adapted) scrapes a real `python -m core serve` process under traffic; then **every
Grafana panel query** of monitoring/grafana/dashboards returns data, the alert rules are loaded, and
the latest drift decision (drift found) is in Prometheus and fires its alert."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.core.serving.conftest import unfamiliar_photo
from tests.integration.conftest import REPO, _cannot_start, _free_port, _stop
from tests.integration.test_api_server import Server, start_server, stop_server

pytestmark = pytest.mark.slow
MONITORING = REPO / "monitoring"
DASHBOARDS = MONITORING / "grafana" / "dashboards"


@pytest.fixture(scope="module")
def api(trained_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API with its own inference log and a drift report saying "drift" (as `core drift` writes)."""
    here = tmp_path_factory.mktemp("prom-api")
    reports = here / "reports" / "evidently"
    reports.mkdir(parents=True)
    (reports / "latest.json").write_text(
        json.dumps(
            {
                "created_at": "2026-11-27T09:00:00+00:00",
                "drift_detected": True,
                "drifted_share": 0.62,
                "drift_share_threshold": 0.5,
                "current_rows": 900,
                "columns": [
                    {
                        "column": c,
                        "kind": "numerical",
                        "method": "Wasserstein distance (normed)",
                        "score": s,
                        "threshold": 0.1,
                        "drifted": s > 0.1,
                    }
                    for c, s in (("image_brightness", 0.4), ("confidence", 0.05))
                ],
            }
        )
    )
    env = {
        "RAKUTEN_INFERENCE_LOG_URL": f"sqlite:///{here / 'log.db'}",
        "RAKUTEN_REPORTS_DIR": str(here / "reports"),
    }
    server = start_server(trained_source, here / "api.log", alias_check_s=0, env=env)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def prometheus(api: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's `prometheus` with the repository's configuration: the API target points at the test's
    API, scrapes and rule evaluations every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        _cannot_start("no `prometheus` binary (Debian: apt-get install prometheus)", "Prometheus")
    assert binary is not None
    here = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(MONITORING / name) for name in config["rule_files"]]
    port = _free_port()
    for job in config["scrape_configs"]:
        targets = (
            [api.url.removeprefix("http://")] if job["job_name"] == "rakuten-api" else [f"127.0.0.1:{port}"]
        )
        job.pop("dns_sd_configs", None)  # the full stack finds its API replicas by DNS; here, one API
        job["static_configs"] = [{"targets": targets}]
    (here / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    log = here / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={here / 'prometheus.yml'}",
                f"--storage.tsdb.path={here / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            if process.poll() is not None:
                _cannot_start(f"exited with {process.returncode}: {log.read_text()[-2000:]}", "Prometheus")
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.25)
        yield url
    finally:
        _stop(process)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def traffic(url: str, seconds: float, picture: Path) -> None:
    """What a shop sends: titles, titles with photos (a few unlike any product photo), and a few bad
    requests (for the error panels)."""
    stop = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=10) as client:
        i = 0
        while time.monotonic() < stop:
            client.post("/predict", json={"designation": f"Piscine tubulaire Intex {i}", "description": ""})
            client.post("/predict", json={"designation": ""})  # 422
            client.post(
                "/predict/product",
                data={"designation": "Lampe de chevet"},
                files={"file": ("p.jpg", picture.read_bytes())},
            )
            if i % 5 == 0:  # now and then a photo unlike every product photo (the photo guard's panel)
                client.post(
                    "/predict/product",
                    data={"designation": "Lampe de chevet"},
                    files={"file": ("scene.jpg", unfamiliar_photo(i))},
                )
            i += 1
            time.sleep(0.05)


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{path.stem}: {panel['title']} [{target['refId']}]", target["expr"]))
    return out


def test_every_dashboard_query_returns_data(api: Server, prometheus: str, trained_source: Path) -> None:
    assert len(panel_queries()) >= 15
    deadline = time.monotonic() + 60
    while not query(prometheus, 'up{job="rakuten-api"} == 1'):
        assert time.monotonic() < deadline, "Prometheus never scraped the API"
        time.sleep(0.5)
    picture = next((trained_source / "data" / "raw" / "images").rglob("*.jpg"))
    sender = threading.Thread(target=traffic, args=(api.url, 12.0, picture))
    sender.start()
    sender.join()
    time.sleep(2)  # one more scrape after the last request
    empty = []
    for name, expr in panel_queries():
        # Grafana fills $__rate_interval from the scrape interval; the test scrapes every second
        if not query(prometheus, expr.replace("$__rate_interval", "30s")):
            empty.append(name)
    assert not empty, f"panels with no data: {empty}"
    photos = dict(panel_queries())["rakuten-api: Photos unlike the training photos [A]"]
    [share] = query(prometheus, photos.replace("$__rate_interval", "30s"))
    assert 0 < float(share["value"][1]) < 0.5  # a scene now and then among the product photos


def test_alert_rules_are_loaded_and_drift_fires(api: Server, prometheus: str) -> None:
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"]: r for group in rules for r in group["rules"]}
    written = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    assert set(loaded) == {r["alert"] for group in written for r in group["rules"]}, loaded
    assert all(r["health"] == "ok" for r in loaded.values()), loaded
    assert query(prometheus, 'rakuten_drift_detected{job="rakuten-api"} == 1')
    deadline = time.monotonic() + 30
    while True:
        alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
        if "RakutenDriftDetected" in firing:
            break
        assert time.monotonic() < deadline, alerts
        time.sleep(0.5)
    assert not {"RakutenApiDown", "RakutenModelNotLoaded", "RakutenModelRefused"} & firing


def test_dashboard_and_provisioning_files_are_consistent() -> None:
    datasource = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    for path in DASHBOARDS.glob("*.json"):
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"]
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == uid, (path.name, panel["title"])


def test_service_health_page_with_prometheus_then_without(
    api: Server, prometheus: str, trained_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connected: the page charts the last hour from Prometheus; with Prometheus gone, it falls back
    to the API's own /metrics totals (and says Prometheus is down)."""
    from streamlit.testing.v1 import AppTest

    from core.config import get_settings

    home = str(REPO / "app" / "Home.py")
    monkeypatch.setenv("RAKUTEN_ROOT", str(trained_source))
    monkeypatch.setenv("RAKUTEN_API_URL", api.url)
    monkeypatch.setenv("RAKUTEN_PROMETHEUS_URL", prometheus)
    get_settings.cache_clear()
    at = AppTest.from_file(home, default_timeout=60).run()
    at.switch_page("../pages/service_health.py").run()
    assert not at.exception, at.exception
    status = dict(zip(at.dataframe[0].value["service"], at.dataframe[0].value["status"], strict=True))
    assert status["API"] == "● up" and status["Prometheus"] == "● up"
    assert any("from Prometheus" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 4

    monkeypatch.setenv("RAKUTEN_PROMETHEUS_URL", f"http://127.0.0.1:{_free_port()}")
    get_settings.cache_clear()
    import streamlit as st

    st.cache_resource.clear()
    at = AppTest.from_file(home, default_timeout=60).run()
    at.switch_page("../pages/service_health.py").run()
    assert not at.exception, at.exception
    assert any("since the API started" in c.value for c in at.caption)
    assert at.metric[0].value == "v1" and len(at.get("plotly_chart")) >= 2
    get_settings.cache_clear()
