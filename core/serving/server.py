"""Running the service: uvicorn on the app factory, with the process-level set-up several workers need."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any, Final, cast

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from core.serving.logs import uvicorn_log_config

APP: Final = "core.serving.app:create_app"
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
WORKERS_ENV: Final = "RAKUTEN_API_WORKERS"
log = logging.getLogger("uvicorn.error")


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
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "access_log": False,  # the service logs one line per request itself, with its request id
        "log_config": uvicorn_log_config(log_level.upper()),
        "timeout_graceful_shutdown": 30,
    }
    if workers > 1 and _balances_connections(port):
        _serve_own_listeners(uvicorn.Config(APP, **options))
    else:
        uvicorn.run(APP, **options)


def _balances_connections(port: int) -> bool:
    """Whether the kernel spreads a port's connections over several listening sockets (Linux's
    `SO_REUSEPORT`; elsewhere every connection would go to one of them). Port 0 has no one port."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT") and port != 0


def _serve_own_listeners(config: uvicorn.Config) -> None:
    """uvicorn's supervisor (restarts, signals, graceful stop) with one listening socket per worker in
    the port's `SO_REUSEPORT` group, so the kernel spreads connections over the workers.

    With uvicorn's one shared socket, whichever worker wakes first accepts every connection waiting:
    16 clients connecting at once were split 14 / 2 between 2 workers (measured), and the busy one's
    clients waited twice as long. Each worker binds its own socket as it starts (a restarted one too):
    the supervisor hands every worker the same `_OwnListener`, which is a socket only once unpickled in
    the worker. The port is tried here first, so that one in use fails at once, not in every worker."""
    _bind_own(config.host, config.port).close()
    listener = _OwnListener(config.host, config.port)
    Multiprocess(config, sockets=[cast(socket.socket, listener)]).run()


class _OwnListener:
    """Pickles as "bind a socket of the port's group": the worker that unpickles it gets its own."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return _bind_own, (self.host, self.port)


def _bind_own(host: str, port: int) -> socket.socket:
    """A socket bound to host:port in its `SO_REUSEPORT` group (the server starts it listening).
    An address in use or refused ends this process as uvicorn does (its supervisor stops too)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        log.error("Cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        sys.exit(STARTUP_FAILURE)
    sock.set_inheritable(True)
    return sock


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
