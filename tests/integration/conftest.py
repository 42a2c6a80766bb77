"""Real local services for integration tests, started once per session and stopped afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

_START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mlflow_executable() -> str | None:
    beside = Path(sys.executable).with_name("mlflow")  # the environment running the tests
    return str(beside) if beside.is_file() else shutil.which("mlflow")


def _cannot_start(reason: str) -> None:
    """A missing service fails in CI (where it must exist) and is skipped, with the reason, elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"MLflow server unavailable in CI: {reason}")
    pytest.skip(f"MLflow server unavailable: {reason}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def mlflow_server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's own files: `mlflow.db` (backend store), `artifacts/` (served artifacts) and logs."""
    return tmp_path_factory.mktemp("mlflow-server")


@pytest.fixture(scope="session")
def mlflow_server(mlflow_server_dir: Path) -> Iterator[str]:
    """A real, lean `mlflow server` (one worker, no job runner) on a free local port; yields its URL.
    Clients upload and download artifacts through it (`--serve-artifacts`)."""
    executable = _mlflow_executable()
    if executable is None:
        _cannot_start("no `mlflow` executable beside the Python interpreter or on PATH")
    assert executable is not None
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        executable,
        "server",
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{mlflow_server_dir / 'mlflow.db'}",
        "--artifacts-destination",
        str(mlflow_server_dir / "artifacts"),
        "--serve-artifacts",
        "--default-artifact-root",
        "mlflow-artifacts:/",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log_out, log_err = mlflow_server_dir / "server.out", mlflow_server_dir / "server.err"
    with log_out.open("wb") as out, log_err.open("wb") as err:
        try:
            process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=mlflow_server_dir)
        except OSError as exc:
            _cannot_start(f"{executable} did not start: {exc}")
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None:
                _cannot_start(f"exited with code {process.returncode}:\n{_tail(log_err)}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"MLflow server not healthy at {url} after {_START_TIMEOUT_S:.0f} s:\n{_tail(log_err)}"
                )
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
