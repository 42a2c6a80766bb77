"""The local stack's fork server for flow runs, on its own: the client hands its environment and
streams to a forked `python -m prefect.engine` and ends as it does; a cancelled (SIGTERM) or killed
client takes its child with it; with no server the client is `python -m prefect.engine` itself.
(Flow runs through it on the whole stack: every test on `tests.conftest.local_stack`.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.orchestration import forkserver

CLIENT = [sys.executable, "-m", "core.orchestration.forkserver", "run"]


@dataclass(frozen=True)
class Server:
    socket: Path
    log: Path
    env: dict[str, str]  # what a flow run's client gets from the worker

    def said(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def blackhole() -> Iterator[str]:
    """A Prefect API URL that accepts connections and never answers: an engine waits on it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, blackhole: str) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("forkserver")
    path, log = folder / "fs.sock", folder / "runner.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"PREFECT_API_URL": blackhole, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with log.open("wb") as out:
        command = [sys.executable, "-m", "core.orchestration.forkserver", "serve", str(path)]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not path.exists():  # after the imports
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        yield Server(path, log, env | {"RAKUTEN_FORKSERVER_SOCKET": str(path)})
    finally:
        process.terminate()
        process.wait(timeout=60)


def _started(server: Server, before: int, timeout: float = 30) -> int:
    """The pid of the child the server forked after `before` children."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [int(line.split()[-1]) for line in server.said().splitlines() if "started in process" in line]
        if len(pids) > before:
            return pids[before]
        assert time.monotonic() < deadline, server.said()
        time.sleep(0.05)


def _count(server: Server) -> int:
    return server.said().count("started in process")


def test_the_child_gets_the_clients_environment_and_streams_and_exit_code(server: Server) -> None:
    done = subprocess.run(
        CLIENT,
        env=server.env | {"PREFECT__FLOW_RUN_ID": "not-a-run-id"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1  # prefect.engine's own exit for a bad flow run id
    assert "Invalid flow run id" in done.stderr  # written by the child, on the client's stderr
    assert "ended (1)" in server.said()


def test_sigterm_to_the_client_reaches_the_child(server: Server) -> None:
    before = _count(server)
    client = subprocess.Popen(
        CLIENT,
        env=server.env | {"PREFECT__FLOW_RUN_ID": str(uuid.uuid4())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child = _started(server, before)
    time.sleep(1)  # the child waits on the API that never answers
    assert client.poll() is None
    client.send_signal(signal.SIGTERM)  # what a worker sends to cancel a run
    client.wait(timeout=60)
    assert client.returncode != 0
    _gone(child)


def test_a_killed_client_takes_its_child_with_it(server: Server) -> None:
    before = _count(server)
    client = subprocess.Popen(
        CLIENT,
        env=server.env | {"PREFECT__FLOW_RUN_ID": str(uuid.uuid4())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child = _started(server, before)
    client.kill()
    client.wait(timeout=30)
    # SIGTERM at once; a child still busy with Prefect's own clean-up (its API never answers here) is
    # killed once the grace period is over
    _gone(child, timeout=forkserver._GRACE_S + 15)


def test_without_a_server_the_client_is_prefect_engine_itself(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"RAKUTEN_FORKSERVER_SOCKET": str(tmp_path / "none.sock"), "PREFECT__FLOW_RUN_ID": "not-a-run-id"}
    done = subprocess.run(CLIENT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Invalid flow run id" in done.stderr


def _gone(pid: int, timeout: float = 20) -> None:  # the engine itself waits 60 s on the API
    import psutil

    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"flow run process {pid} still running"
        time.sleep(0.1)
