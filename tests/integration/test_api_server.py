"""The prediction service as users run it: `python -m core serve` in its own process, real HTTP.

Sixteen clients keep predicting while the champion is promoted, reloaded, rolled back and reloaded
again: no request may fail, every answer names the version that gave it, and the inference log holds
exactly one record per answered request. A second server shows the alias watcher picking up a
promotion with no admin call at all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from core.storage.inference_log import read_inference_log
from core.tracking.registry import Registry, open_registry
from tests.conftest import build_two_run_project
from tests.integration.conftest import _free_port

pytestmark = pytest.mark.slow

TOKEN = "integration-admin-token-0123456789"
CLIENTS = 16
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 champion, v2 registered and refused by the gate (promoted by hand below)."""
    return build_two_run_project(tmp_path_factory, "api-server")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_server(
    project: Path, log: Path, *, alias_check_s: float, workers: int = 1, env: dict[str, str] | None = None
) -> Server:
    port = _free_port()
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "RAKUTEN_MLFLOW_TRACKING_URI", "RAKUTEN_INFERENCE_LOG_URL")
    }
    env = {
        **base,
        "RAKUTEN_ROOT": str(project),
        "RAKUTEN_API_ADMIN_TOKEN": TOKEN,
        "RAKUTEN_API_ALIAS_CHECK_S": str(alias_check_s),
        **(env or {}),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", "serve", "--port", str(port), "--workers", str(workers)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=project,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the API exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return Server(url, process, log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"the API was not ready after 90 s:\n{log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    server.process.terminate()  # graceful: in-flight requests finish, the inference log is flushed
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@dataclass
class Load:
    """`CLIENTS` threads posting /predict until stopped; every outcome is kept."""

    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    versions: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                body = {"designation": f"Piscine tubulaire Intex {i}-{n}", "description": "pompe"}
                try:
                    r = client.post("/predict", json=body)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(f"client {i}: {exc!r}")
                    continue
                with self.lock:
                    if r.status_code == 200:
                        self.versions[r.json()["model_version"]] += 1
                    else:
                        self.failures.append(f"client {i}: {r.status_code} {r.text[:200]}")

    @property
    def answered(self) -> int:
        return sum(self.versions.values())


def registry(project: Path) -> Registry:
    settings = Settings(root=project)
    return open_registry(settings)


def reload(server: Server) -> dict[str, object]:
    r = httpx.post(f"{server.url}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def served_version(server: Server) -> int:
    return int(httpx.get(f"{server.url}/model", timeout=5).json()["version"])


@pytest.fixture
def clean_log(project: Path) -> Iterator[Settings]:
    settings = Settings(root=project)
    Path(str(settings.inference_log_url).removeprefix("sqlite:///")).unlink(missing_ok=True)
    yield settings


def test_reload_under_load_drops_no_request(project: Path, clean_log: Settings, tmp_path: Path) -> None:
    server = start_server(project, tmp_path / "api.log", alias_check_s=0)
    load = Load(server.url)
    threads = [threading.Thread(target=load.run, args=(i,)) for i in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        registry(project).promote(2, actor="test", reason="reload under load")
        swapped = reload(server)
        assert swapped["outcome"] == "swapped" and swapped["version"] == 2 and swapped["previous"] == 1
        time.sleep(1.5)
        registry(project).rollback(actor="test")
        assert reload(server)["version"] == 1
        time.sleep(1.0)
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=60)
        stop_server(server)
    assert load.failures == []
    assert load.versions[1] > 0 and load.versions[2] > 0, load.versions
    # one record per answered request, none lost, none doubled (the log was flushed at shutdown)
    log = read_inference_log(clean_log)
    assert len(log) == load.answered
    assert log["request_id"].is_unique
    assert Counter(log["model_version"].astype(int)) == load.versions


def test_alias_watcher_follows_a_promotion_without_admin_call(
    project: Path, clean_log: Settings, tmp_path: Path
) -> None:
    server = start_server(project, tmp_path / "api.log", alias_check_s=0.5)
    try:
        assert served_version(server) == 1
        registry(project).promote(2, actor="test", reason="watcher")
        deadline = time.monotonic() + 30
        while served_version(server) != 2:
            assert time.monotonic() < deadline, "the champion move was not picked up"
            time.sleep(0.2)
        swapped = 'rakuten_model_reloads_total{outcome="swapped"} 1.0'
        while swapped not in (metrics := httpx.get(f"{server.url}/metrics").text):
            assert time.monotonic() < deadline, "the reload was not counted"  # counted just after the swap
            time.sleep(0.1)
        assert 'version="2"} 1.0' in metrics and 'version="1"} 0.0' in metrics
    finally:
        registry(project).rollback(actor="test")
        stop_server(server)
    assert "champion alias moved" in server.log.read_text()


def test_two_workers_share_one_metrics_view_and_one_log(
    project: Path, clean_log: Settings, tmp_path: Path
) -> None:
    server = start_server(project, tmp_path / "api.log", alias_check_s=0, workers=2)
    try:
        with httpx.Client(base_url=server.url) as client:  # new connections: both workers get some
            for i in range(40):
                body = {"designation": f"Livre de poche {i}"}
                assert httpx.post(f"{server.url}/predict", json=body, timeout=10).status_code == 200
            # the instrumentator counts a request once its response is sent: the last count may land
            # a moment after the client has its answer; /ready answered as soon as one worker had its
            # model, and the gauge is the lowest over the workers: the other may still be loading
            deadline = time.monotonic() + 90
            while (answered := _predict_count(metrics := client.get("/metrics").text)) < 40 or (
                "rakuten_model_loaded 1.0" not in metrics
            ):
                assert time.monotonic() < deadline, (answered, metrics)
                time.sleep(0.2)
    finally:
        stop_server(server)
    assert answered == 40.0  # merged over the worker processes
    assert len(read_inference_log(clean_log)) == 40


def test_two_workers_share_connections_that_open_at_once(
    project: Path, clean_log: Settings, tmp_path: Path
) -> None:
    """Each worker listens on its own socket of the port (SO_REUSEPORT): the kernel spreads 32
    connections opened together over both, where a shared socket let one worker take nearly all."""
    import psutil

    server = start_server(project, tmp_path / "api.log", alias_check_s=0, workers=2)
    port = int(server.url.rsplit(":", 1)[1])
    workers = psutil.Process(server.process.pid).children(recursive=True)

    def held(status: str) -> dict[int, int]:
        return {
            w.pid: sum(c.status == status and c.laddr.port == port for c in w.net_connections("tcp"))
            for w in workers
        }

    connections = [HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(32)]
    try:
        deadline = time.monotonic() + 90  # /ready answers once one worker listens; wait for both
        while sum(n > 0 for n in held(psutil.CONN_LISTEN).values()) < 2:
            assert time.monotonic() < deadline, held(psutil.CONN_LISTEN)
            time.sleep(0.2)
        for connection in connections:  # all waiting to be accepted at once, as a client pool opens
            connection.connect()
        for connection in connections:
            connection.request("POST", "/predict", b'{"designation": "Livre"}', JSON)
            assert connection.getresponse().read() and connection.sock is not None
        shares = sorted(n for n in held(psutil.CONN_ESTABLISHED).values() if n)
    finally:
        for connection in connections:
            connection.close()
        stop_server(server)
    assert len(shares) == 2 and sum(shares) == 32, shares
    assert shares[0] >= 6, shares  # a fair coin per connection falls this far below 16 once in ~10,000


def test_a_port_in_use_stops_a_multi_worker_server_with_a_clear_error(project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "RAKUTEN_ROOT": str(project)}
        command = [sys.executable, "-m", "core", "serve", "--host", "127.0.0.1", "--port", str(port)]
        done = subprocess.run(
            [*command, "--workers", "2"], env=env, cwd=project, capture_output=True, text=True, timeout=120
        )
    assert done.returncode != 0
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stdout + done.stderr


def _predict_count(metrics: str) -> float:
    line = next(x for x in metrics.splitlines() if x.startswith('http_requests_total{handler="/predict"'))
    return float(line.rsplit(" ", 1)[1])


def test_batch_workers_never_outlive_the_service(project: Path, tmp_path: Path) -> None:
    import psutil

    server = start_server(project, tmp_path / "api.log", alias_check_s=0)
    rows = [{"designation": f"Livre {i}"} for i in range(300)]  # a batch big enough to be split
    assert httpx.post(f"{server.url}/predict/batch", json=rows, timeout=60).status_code == 200
    children = psutil.Process(server.process.pid).children(recursive=True)
    assert children, "expected batch worker processes"
    server.process.kill()  # no shutdown hook runs
    server.process.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"orphaned workers: {[p.pid for p in alive]}"
