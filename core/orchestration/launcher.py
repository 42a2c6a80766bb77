"""Start, find and cancel training runs — for the console and the CLI — with at most one at a time.

Server mode (`PREFECT_API_URL` set and the `training` deployment exists): `run_deployment` creates the
run at once and a worker executes it. Embedded mode: a background `python -m core flow run training`
process records its run in the project's Prefect store under a name chosen here, so the run can be
found (and followed) by name within seconds. A second start while a training is pending or running is
refused with the active run's id — checked under a file lock, so a double click cannot slip through.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from filelock import FileLock

from core.config import Settings
from core.errors import RakutenError
from core.orchestration.runs import (
    RunInfo,
    RunNotFound,
    prefect_api,
    prefect_client,
    run_info,
    run_uuid,
)

FLOW: Final = "training-pipeline"
DEPLOYMENT: Final = "training-pipeline/training"
WORK_POOL: Final = "rakuten-process"
ACTIVE: Final = ("SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED")
Mode = Literal["server", "embedded"]


class AlreadyRunning(RakutenError):
    """A training run is already pending or running; `run_id` names it."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"A training run is already in progress ({run_id}): wait for it, or cancel it first."
        )
        self.run_id = run_id


class LaunchError(RakutenError):
    """The run could not be started (no worker deployment, the background process died, …)."""


@dataclass(frozen=True)
class Launch:
    run_id: str
    mode: Mode
    name: str


def _state_dir(settings: Settings) -> Path:
    path = settings.models / ".runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def mode(settings: Settings) -> Mode:
    return "server" if settings.prefect_api_url else "embedded"


def active_training(settings: Settings) -> RunInfo | None:
    """The pending or running training run, if any, without its steps (one API call; from Prefect —
    the truth after a browser reload)."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with prefect_client(settings) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in ACTIVE]))
            ),
            limit=1,
        )
        return run_info(client, runs[0]) if runs else None


def start_training(
    settings: Settings, overrides: dict[str, Any] | None = None, *, actor: str = "console", wait_s: float = 60
) -> Launch:
    """Start a training run and return its id as soon as Prefect knows it; `AlreadyRunning` if one is."""
    with FileLock(str(_state_dir(settings) / "launch.lock"), timeout=wait_s + 30):
        pending = _pending_launch(settings)
        if pending is not None:
            raise AlreadyRunning(pending)
        active = active_training(settings)
        if active is not None:
            raise AlreadyRunning(active.id)
        name = f"training-{uuid.uuid4().hex[:8]}"
        parameters = {"overrides": overrides or {}, "actor": actor}
        if mode(settings) == "server":
            return _start_deployment(settings, parameters, name)
        return _start_embedded(settings, parameters, name, wait_s)


def _start_deployment(settings: Settings, parameters: dict[str, Any], name: str) -> Launch:
    import httpx
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from core.orchestration.runs import PrefectUnavailable

    try:
        with prefect_api(settings):
            # _sync (Prefect's async_dispatch): a sync call even where an event loop runs in this thread
            run = run_deployment(  # type: ignore[call-arg]
                DEPLOYMENT, parameters=parameters, flow_run_name=name, timeout=0, as_subflow=False, _sync=True
            )
    except httpx.TransportError as exc:
        raise PrefectUnavailable(
            f"The Prefect server at {settings.prefect_api_url} does not answer ({exc})."
        ) from None
    except ObjectNotFound:
        raise LaunchError(
            f"No deployment {DEPLOYMENT!r} on {settings.prefect_api_url}: run "
            "`prefect deploy --all` from the repository root and start a worker "
            "(`prefect worker start --pool rakuten-process`)."
        ) from None
    return Launch(str(run.id), "server", name)  # type: ignore[union-attr]  # sync call: a FlowRun


def _start_embedded(settings: Settings, parameters: dict[str, Any], name: str, wait_s: float) -> Launch:
    log_file = _state_dir(settings) / f"{name}.log"
    command = [sys.executable, "-m", "core", "flow", "run", "training", "--name", name,
               "--actor", parameters["actor"]]  # fmt: skip
    for key, value in parameters["overrides"].items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    from prefect.settings import get_current_settings

    # the run must land in the store this process reads: hand over its effective Prefect home
    env = {**os.environ, "PREFECT_HOME": str(get_current_settings().home)}
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=settings.root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    marker = _state_dir(settings) / "pending.json"
    marker.write_text(json.dumps({"name": name, "pid": process.pid, "at": time.time()}))
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            run_id = _find_by_name(settings, name)
            if run_id is not None:
                (_state_dir(settings) / f"{run_id}.pid").write_text(str(process.pid))
                return Launch(run_id, "embedded", name)
            if process.poll() is not None:
                raise LaunchError(
                    f"The training process exited ({process.returncode}) before starting: "
                    f"{log_file.read_text(errors='replace')[-1500:]}"
                )
            time.sleep(0.5)
        raise LaunchError(
            f"The training run did not appear in Prefect within {wait_s:.0f} s (log: {log_file})."
        )
    finally:
        marker.unlink(missing_ok=True)


def _pending_launch(settings: Settings) -> str | None:
    """A launch another console session started seconds ago whose run is not in Prefect yet."""
    marker = _state_dir(settings) / "pending.json"
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    alive = _alive(int(data["pid"]))
    return str(data["name"]) if alive and time.time() - float(data["at"]) < 120 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _find_by_name(settings: Settings, name: str) -> str | None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with prefect_client(settings) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])), limit=1
        )
    return str(runs[0].id) if runs else None


def cancel(settings: Settings, run_id: str) -> None:
    """Cancel a run. Server mode: Prefect tells the worker to stop it. Embedded: this machine's run
    process is stopped first, then the run is marked Cancelled (so the last word is the cancel)."""
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled, Cancelling

    pid_file = _state_dir(settings) / f"{run_id}.pid"
    embedded = pid_file.is_file()
    if embedded:
        _stop_group(int(pid_file.read_text()))
        pid_file.unlink(missing_ok=True)
    with prefect_client(settings) as client:
        try:
            run = client.read_flow_run(run_uuid(run_id))
        except ObjectNotFound:
            raise RunNotFound(f"No flow run {run_id} in the Prefect API.") from None
        waiting = run.state_type is not None and run.state_type.value in {"SCHEDULED", "PAUSED"}
        # a run no process has picked up yet has nothing to stop: it is cancelled at once
        final = embedded or waiting
        client.set_flow_run_state(run.id, Cancelled() if final else Cancelling(), force=True)


def worker_ready(settings: Settings) -> bool | None:
    """Server mode: whether a worker polls the work pool (else started runs wait); None in embedded
    mode or when the pool does not exist."""
    from prefect.exceptions import ObjectNotFound

    if mode(settings) == "embedded":
        return None
    with prefect_client(settings) as client:
        try:
            pool = client.read_work_pool(WORK_POOL)
        except ObjectNotFound:
            return None
    return pool.status is not None and pool.status.value == "READY"


def _stop_group(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the run's process group, SIGKILL it if still there after `grace_s`."""
    if not _alive(pid):
        return
    group = os.getpgid(pid)
    os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it
        except ChildProcessError:
            finished = pid if not _alive(pid) else 0  # another process started it
        if finished:
            return
        time.sleep(0.2)
    os.killpg(group, signal.SIGKILL)
