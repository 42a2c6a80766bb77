"""Running the service: uvicorn on the app factory, with the process-level set-up several workers need."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from core.serving.logs import uvicorn_log_config


def run_server(*, host: str, port: int, workers: int, log_level: str = "info") -> None:
    """Serve `core.serving.app:create_app` until stopped (each worker builds its app from Settings).

    With several workers, Prometheus's multiprocess directory is created first (each worker writes its
    metric values there and `/metrics` merges them) and removed afterwards."""
    import uvicorn

    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = Path(tempfile.mkdtemp(prefix="rakuten-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    try:
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
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
