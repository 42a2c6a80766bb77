"""The console's launcher (`python -m core.ui.serve`, what the local stack runs): what the first page
needs is loaded before Streamlit answers — without creating a tracking store by looking — and then
the console serves as `streamlit run app/Home.py` does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from core.config import get_settings
from core.stack.programs import CONSOLE_ENVIRONMENT
from core.tracking.store import connect
from core.ui.serve import warm
from tests.conftest import free_port


def test_warming_an_empty_project_creates_no_tracking_store(project: Path) -> None:
    assert warm(get_settings()) == []
    assert not (project / "mlflow.db").exists()  # nothing trained: looking must not create one


def test_warming_opens_an_existing_store(project: Path) -> None:
    connect(get_settings())  # an empty store, as the first training leaves one
    assert (project / "mlflow.db").is_file()
    assert warm(get_settings()) == []


def test_the_console_answers_once_loaded(project: Path) -> None:
    port = free_port()
    log = project / "console.log"
    with log.open("wb") as out:
        console = subprocess.Popen(
            [sys.executable, "-m", "core.ui.serve", "--server.port", str(port), "--server.headless", "true"],
            cwd=project,
            env={k: v for k, v in os.environ.items() if k not in CONSOLE_ENVIRONMENT}
            | {"RAKUTEN_ROOT": str(project)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert console.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        said = log.read_text(errors="replace")
        assert "console: loaded what its first page needs in" in said
        # it fails fast on a service that is down: the clients' settings are in its environment
        environment = psutil.Process(console.pid).environ()
        assert {k: environment.get(k) for k in CONSOLE_ENVIRONMENT} == CONSOLE_ENVIRONMENT
        assert "could not load" not in said and "Traceback" not in said
    finally:
        console.terminate()
        console.wait(timeout=30)
