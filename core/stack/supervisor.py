"""Start, watch and stop the local stack through supervisord (`supervisor` from PyPI).

supervisord owns the programs (`core.stack.programs`): it starts them in their own process groups,
restarts a crashed one with back-off, writes their logs and stops each with its whole group. This
module drives it over its XML-RPC socket: bring the stack up (health checks, the Prefect deployments,
then the worker), say how each program is doing, and take everything down — including flow-run
processes a worker started in sessions of their own, so a stop leaves no process behind.
"""
# Size: driving supervisord: health, bringing up in order, deployments, status (stopping: stopping.py).

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
from supervisor.xmlrpc import SupervisorTransport

from core.config import Settings
from core.errors import RakutenError
from core.io import write_text
from core.net import refused
from core.orchestration.flow_runs import prefect_client, prefect_environment
from core.orchestration.launcher import WORK_POOL
from core.stack.address import StackAddress, read_address, write_address
from core.stack.programs import (
    ORCHESTRATION_NICE,
    PROGRAMS,
    REPO,
    Program,
    StackPaths,
    forkserver_command,
    niced,
    programs,
    render_config,
)

# Lazy imports: Prefect's client loads in the two calls that use it (crashed runs, the work pool), not for
# `status`.

STARTUP_S: Final = 300.0  # per program, on a busy 2-core machine (Prefect's first start migrates its DB)
STOP_S: Final = 60.0
Report = Callable[[str], None]


class StackError(RakutenError):
    """The local stack cannot start, or a program in it failed."""


class PortBusy(StackError):
    """A port the stack needs is taken by another program."""


@dataclass(frozen=True)
class ProgramStatus:
    name: str
    state: str  # supervisord's: RUNNING, STARTING, BACKOFF, STOPPED, EXITED, FATAL, …
    pid: int | None
    uptime_s: float | None
    healthy: bool | None  # None: not checked (not running)
    url: str | None
    log: str


# --- supervisord's control socket --------------------------------------------------------------------
def proxy(paths: StackPaths) -> Any:

    transport = SupervisorTransport(None, None, serverurl=f"unix://{paths.socket}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def supervisor_pid(settings: Settings) -> int | None:
    """The running stack's supervisord, if its control socket answers."""
    paths = StackPaths.of(settings)
    if not paths.socket.exists():
        return None
    try:
        return int(proxy(paths).supervisor.getPID())
    except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
        return None


def running_address(settings: Settings) -> StackAddress | None:
    """Where the stack running on this project listens (as its `up` recorded it); None when none runs."""
    paths = StackPaths.of(settings)
    if not paths.address.exists() or supervisor_pid(settings) is None:
        return None  # a record a crash left behind says nothing: no supervisord answers
    return read_address(paths)


def _info(paths: StackPaths) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in proxy(paths).supervisor.getAllProcessInfo()}


# --- health ----------------------------------------------------------------------------------------
def _answers(url: str, timeout: float = 1.0) -> bool:

    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _worker_polls(settings: Settings) -> bool:

    try:
        with prefect_client(settings) as client:
            pool = client.read_work_pool(WORK_POOL)
    except Exception:
        return False
    return pool.status is not None and pool.status.value == "READY"


def healthy(settings: Settings, program: Program) -> bool:
    if isinstance(program.health, Path):  # the fork server: its socket is there once it has imported all
        return program.health.exists()
    return _answers(program.health) if program.health else _worker_polls(settings)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(settings: Settings) -> None:
    """`PortBusy` naming the setting to change when another program holds a port the stack needs."""
    wanted = [
        ("Prefect server", "127.0.0.1", settings.prefect_port, "RAKUTEN_PREFECT_PORT"),
        ("prediction API", settings.api_host, settings.api_port, "RAKUTEN_API_PORT"),
        ("console", "127.0.0.1", settings.console_port, "RAKUTEN_CONSOLE_PORT"),
    ]
    for what, host, port, variable in wanted:
        if not _port_free(host, port):
            raise PortBusy(
                f"Port {port} (the {what}) is taken by another program. Stop it, or choose another "
                f"port: {variable}=… (environment or .env)."
            )


# --- bringing it up --------------------------------------------------------------------------------
def write_config(settings: Settings) -> StackPaths:
    """supervisord's configuration for this start, and where its programs will listen (removed at stop)."""
    paths = StackPaths.of(settings)
    paths.logs.mkdir(parents=True, exist_ok=True)
    write_text(paths.config, render_config(paths, programs(settings)))
    write_address(paths, StackAddress.of(settings))
    return paths


def launch_supervisor(paths: StackPaths, *, detach: bool) -> subprocess.Popen[bytes] | None:
    """Start supervisord: as a child in the foreground (returned), or as a daemon (None)."""
    command = [sys.executable, "-m", "supervisor.supervisord", "-c", str(paths.config)]
    if not detach:
        return subprocess.Popen([*command, "--nodaemon"])
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise StackError(f"supervisord did not start: {(done.stdout + done.stderr).strip()[-1500:]}")
    return None


def _wait(settings: Settings, paths: StackPaths, program: Program, deadline: float) -> None:
    """Until the program answers its health check; `StackError` with its log's tail if it gave up."""
    while True:
        try:
            state = _info(paths)[program.name]["statename"]
        except (OSError, xmlrpc.client.Fault):
            state = "STARTING"  # supervisord's socket is not up yet
        if state in {"FATAL", "EXITED"} or (state == "STOPPED" and program.autostart):
            raise StackError(f"{program.name} could not start ({state}):\n{_tail(paths, program.name)}")
        if state == "RUNNING" and healthy(settings, program):
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"{program.name} did not become healthy within {STARTUP_S:.0f} s ({state}):\n"
                f"{_tail(paths, program.name)}"
            )
        time.sleep(0.25)


def _tail(paths: StackPaths, name: str, chars: int = 1500) -> str:
    try:
        return paths.log(name).read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log yet)"


def bring_up(settings: Settings, paths: StackPaths, report: Report) -> None:
    """With supervisord started: wait for Prefect, deploy the flows (while the API, the console and
    the fork server come up), then start the worker."""
    by_name = {p.name: p for p in programs(settings)}
    _wait(settings, paths, by_name["prefect"], time.monotonic() + STARTUP_S)
    report(f"Prefect server up: {by_name['prefect'].url}")
    ended = crash_abandoned_runs(settings)
    if ended:
        report(f"Marked {ended} run(s) the last stop left active as crashed")
    proxy(paths).supervisor.startProcess("runner", False)  # imports the flows' modules meanwhile
    deploying = _deploy(settings)
    for name in ("api", "console"):
        _wait(settings, paths, by_name[name], time.monotonic() + STARTUP_S)
        report(f"{name} up: {by_name[name].url}")
    _deployed(deploying)
    report("Flows deployed (prefect.yaml): training, monitor-and-retrain (daily schedule)")
    _wait(settings, paths, by_name["runner"], time.monotonic() + STARTUP_S)  # before the worker: its
    proxy(paths).supervisor.startProcess("worker", False)  # first run goes through the fork server
    _wait(settings, paths, by_name["worker"], time.monotonic() + STARTUP_S)
    report("worker up, with its fork server: trainings and scheduled runs execute")


def crash_abandoned_runs(settings: Settings) -> int:
    """Runs the last stop left pending or running (their processes are gone) are marked Crashed: else
    they would block every new training as "already running"."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    active = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]
    with prefect_client(settings) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=active)))
        )
        for run in runs:
            message = "The local stack stopped while this run was active."
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
    return len(runs)


def _deploy(settings: Settings) -> subprocess.Popen[str]:
    """Create the work pool, start `prefect deploy --all` (prefect.yaml's deployments; idempotent)."""
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    template["variables"]["properties"]["command"]["default"] = forkserver_command()
    with prefect_client(settings) as client:
        try:
            pool = WorkPoolCreate(name=WORK_POOL, type="process", base_job_template=template)
            client.create_work_pool(pool)
        except ObjectAlreadyExists:  # from an earlier start: its command may name another interpreter
            client.update_work_pool(WORK_POOL, WorkPoolUpdate(base_job_template=template))
    env = {**os.environ, **prefect_environment(settings)}
    command = niced([programs(settings)[0].command[0], "--no-prompt", "deploy", "--all"], ORCHESTRATION_NICE)
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _deployed(process: subprocess.Popen[str]) -> None:
    try:
        output, _ = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    if process.returncode != 0:
        raise StackError(f"`prefect deploy --all` failed:\n{output[-2000:]}")


# --- status ----------------------------------------------------------------------------------------
def status(settings: Settings) -> list[ProgramStatus] | None:
    """Each program's supervisord state and health; None when the stack is not running."""
    paths = StackPaths.of(settings)
    if supervisor_pid(settings) is None:
        return None
    info = _info(paths)
    out = []
    for program in programs(settings):
        entry = info.get(program.name, {})
        state = str(entry.get("statename", "UNKNOWN"))
        running = state == "RUNNING"
        out.append(
            ProgramStatus(
                name=program.name,
                state=state,
                pid=int(entry["pid"]) if running and entry.get("pid") else None,
                uptime_s=float(entry["now"] - entry["start"]) if running else None,
                healthy=healthy(settings, program) if running else None,
                url=program.url,
                log=str(paths.log(program.name)),
            )
        )
    return out


def starting(settings: Settings, names: Collection[str] = PROGRAMS, *, within_s: float = 120.0) -> set[str]:
    """Those of the `names` programs the running stack is still bringing up: supervisord says STARTING
    or BACKOFF, or RUNNING for less than `within_s` and not listening yet (a server binds its port
    seconds after its process starts, once its own start-up is over). Empty when no stack runs here."""
    paths = StackPaths.of(settings)
    if not paths.socket.exists():
        return set()
    try:
        info = _info(paths)
    except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
        return set()
    by_name: dict[str, Program] = {p.name: p for p in programs(settings)}
    found = set()
    for name in names:
        entry = info.get(name)
        if entry is None:
            continue
        if entry["statename"] in {"STARTING", "BACKOFF"} or (
            entry["statename"] == "RUNNING"
            and entry["now"] - entry["start"] < within_s
            and (url := by_name[name].url) is not None
            and refused(url)
        ):
            found.add(name)
    return found
