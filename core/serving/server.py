"""Running the service: uvicorn on the app factory, with the process-level set-up several workers need."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Final

import uvicorn

from core.serving.logs import uvicorn_log_config

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
WORKERS_ENV: Final = "RAKUTEN_API_WORKERS"


def run_server(*, host: str, port: int, workers: int, log_level: str = "info") -> None:
    """Serve `core.serving.app:create_app` until stopped (each worker builds its app from Settings).

    Several workers share their metrics through Prometheus's multiprocess directory, which each worker
    reads from its environment when it imports the client: without one, the server runs as a child
    process started with a fresh directory in its environment, removed when it ends. Its environment
    also says how many workers there are (`RAKUTEN_API_WORKERS`: each worker's share of the idle
    cores for batches, `Settings.batch_processes`, depends on it)."""
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        command = [sys.executable, "-m", "core", "serve", "--host", host, "--port", str(port)]
        _run_with_metrics_dir([*command, "--workers", str(workers), "--log-level", log_level], workers)
        return
    uvicorn.run(
        "core.serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # the service logs one line per request itself, with its request id
        log_config=uvicorn_log_config(log_level.upper()),
        timeout_graceful_shutdown=30,
    )


def _run_with_metrics_dir(command: list[str], workers: int) -> None:
    metrics_dir = Path(tempfile.mkdtemp(prefix="rakuten-metrics-"))
    try:
        env = {**os.environ, MULTIPROC_ENV: str(metrics_dir), WORKERS_ENV: str(workers)}
        child = subprocess.Popen(command, env=env)

        def forward(signum: int, frame: FrameType | None) -> None:
            child.send_signal(signum)  # uvicorn's graceful shutdown, in the child

        stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, forward) for s in stops}
        try:
            code = child.wait()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise SystemExit(code)
