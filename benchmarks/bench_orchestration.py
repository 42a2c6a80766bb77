"""Benchmark of orchestration (`make bench`): how soon a Retrain shows progress, in both modes.

What the console does on a click, timed: `start_training` (the launcher), then the run read back
from Prefect every 0.1 s until its first step is running. Local stack: `python -m core up` (its
Prefect server, the flows deployed, its worker). Server mode: a real `prefect server`, the deployments
of prefect.yaml and a `prefect worker` polling every 0.5 s, started by hand as the README tells it.
Also timed: one refresh of the page's live view (active run + the run with its steps + its last 40 log
lines) while a run is going. Each mode runs in its own process (Prefect is configured per process)
on a 1,500-product demo project; three runs each.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Row = tuple[str, str, str]
REPO = Path(__file__).resolve().parents[1]
RUNS = 3


def run(tmp: Path, workers: int) -> list[Row]:
    from core.data.demo.generator import DemoSpec, write_demo

    rows: list[Row] = []
    for mode, target in (("local stack", "< 3 s"), ("server", "< 3 s")):
        root = tmp / mode.replace(" ", "-")
        write_demo(root / "data" / "raw", DemoSpec(rows=1500, seed=11), workers=workers)
        result = _server_mode(root) if mode == "server" else _local_stack(root)
        rows += [
            (
                f"Orchestration ({mode}): Retrain click → run id back (median of {RUNS})",
                f"{statistics.median(result['id_s']):.2f} s",
                "—",
            ),
            (
                f"Orchestration ({mode}): click → first step running (median; max), the page shows it "
                "at its next 1 s refresh",
                f"{statistics.median(result['first_s']):.2f} s; {max(result['first_s']):.2f} s",
                target,
            ),
            (
                f"Orchestration ({mode}): one live-view refresh during a run (p50 / p95)",
                f"{result['tick_p50_ms']:.0f} / {result['tick_p95_ms']:.0f} ms",
                "page stays responsive",
            ),
            (
                f"Orchestration ({mode}): 1,500-product training, click → Completed (median)",
                f"{statistics.median(result['total_s']):.1f} s",
                "—",
            ),
        ]
    return rows


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    return {**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def _measure_in_child(root: Path, extra: dict[str, str]) -> dict[str, Any]:
    """Run `measure()` in a fresh process pointed at `root` (and a Prefect server if `extra` says so)."""
    done = subprocess.run(
        [sys.executable, __file__, str(root)],
        env=_clean_env(RAKUTEN_ROOT=str(root), **extra),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"orchestration benchmark failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _local_stack(root: Path) -> dict[str, Any]:
    """`python -m core up --detach --no-prepare` on the project (free ports), measured, then `down`."""
    ports = {}
    for name in ("PREFECT", "API", "CONSOLE"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[f"RAKUTEN_{name}_PORT"] = str(sock.getsockname()[1])
    env = _clean_env(RAKUTEN_ROOT=str(root), **ports)
    _core(env, root, "up", "--detach", "--no-prepare")
    try:
        return _measure_in_child(root, ports)
    finally:
        _core(env, root, "down")


def _core(env: dict[str, str], root: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "core", *args], env=env, cwd=root, capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        raise RuntimeError(f"`core {' '.join(args)}` failed:\n{done.stderr[-3000:]}")


def _server_mode(root: Path) -> dict[str, Any]:
    prefect = str(Path(sys.executable).with_name("prefect"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    home = root / "prefect-home"
    home.mkdir()
    env = _clean_env(PREFECT_HOME=str(home))
    log = (root / "prefect.log").open("wb")
    server = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    worker = None
    try:
        _wait_healthy(url)
        client = {**env, "PREFECT_API_URL": url, "RAKUTEN_ROOT": str(root)}
        for command in (
            [prefect, "work-pool", "create", "rakuten-process", "--type", "process"],
            [prefect, "--no-prompt", "deploy", "--all"],
        ):
            subprocess.run(command, env=client, cwd=REPO, check=True, capture_output=True, timeout=120)
        worker = subprocess.Popen(
            [prefect, "worker", "start", "--pool", "rakuten-process"],
            cwd=REPO,
            stdout=log,
            stderr=log,
            env={**client, "PREFECT_WORKER_QUERY_SECONDS": "0.5"},
            start_new_session=True,
        )
        time.sleep(5)  # the worker's first poll
        return _measure_in_child(root, {"PREFECT_API_URL": url})
    finally:
        for process in (worker, server):
            if process is not None:
                os.killpg(process.pid, 15)
                process.wait(timeout=30)
        log.close()


def _wait_healthy(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"Prefect server not healthy at {url}")


def measure() -> dict[str, Any]:
    """In the child: what the console does, timed. The process's Prefect API is warmed first, as the
    page's first render does before anyone can click."""
    from core.config import get_settings
    from core.orchestration.flow_runs import read_run, recent_runs, run_logs
    from core.orchestration.launcher import active_training, start_training

    settings = get_settings()
    recent_runs(settings, limit=1)
    ids, firsts, totals, ticks = [], [], [], []
    for _ in range(RUNS):
        click, start = datetime.now(UTC), time.perf_counter()
        launch = start_training(settings, actor="benchmark")
        ids.append(time.perf_counter() - start)
        while True:
            tick = time.perf_counter()  # one refresh of the page's live view
            active_training(settings)
            run = read_run(settings, launch.run_id)
            run_logs(settings, launch.run_id, last=40)
            ticks.append(time.perf_counter() - tick)
            if run.final:
                break
            time.sleep(0.5)
        if run.state != "COMPLETED":
            raise RuntimeError(f"benchmark run {run.id} ended {run.state}: {run.message}")
        first = min(s.started for s in run.steps if s.started is not None)  # Prefect's own clock
        firsts.append((first - click).total_seconds())
        totals.append(time.perf_counter() - start)
    ticks.sort()
    return {
        "id_s": ids,
        "first_s": firsts,
        "total_s": totals,
        "tick_p50_ms": 1000 * ticks[len(ticks) // 2],
        "tick_p95_ms": 1000 * ticks[int(len(ticks) * 0.95)],
    }


if __name__ == "__main__":  # the child process of `_measure_in_child`
    sys.path.insert(0, str(REPO))
    print(json.dumps(measure()))
