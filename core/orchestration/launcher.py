"""Start, find and cancel training runs — for the console and the CLI — with at most one at a time.

Every training runs on a Prefect worker: the local stack's (`python -m core up`, what `make console`
starts) or your own server's. `run_deployment` creates the run and returns its id at once; the worker
picks it up within a second. A second start while a training is pending or running is refused with
the active run's id — checked under a file lock, so a double click cannot slip through. Each run
carries who started it: its `actor` parameter (what the registry and the audit trail record) and the
tags `user:<name>` and `via:<how>`, which Prefect's UI shows and filters by.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import httpx
from filelock import FileLock

from core.config import Settings
from core.errors import RakutenError
from core.orchestration.flow_runs import (
    PrefectUnavailable,
    RunInfo,
    RunNotFound,
    prefect_api,
    prefect_client,
    run_info,
    run_tags,
    run_uuid,
)

# Lazy imports: Prefect (~2–4 s to import on 2 cores) loads in the calls that use it: the console and
# `python -m core --help` import this module without it.

FLOW: Final = "training-pipeline"
DEPLOYMENT: Final = "training-pipeline/training"
WORK_POOL: Final = "rakuten-process"  # prefect.yaml's deployments and the local stack's worker use it
ACTIVE: Final = ("SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED")
Where = Literal["server", "local"]  # where runs execute (not Settings.mode: embedded/connected)


class AlreadyRunning(RakutenError):
    """A training run is already pending or running; `run_id` names it."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"A training run is already in progress ({run_id}): wait for it, or cancel it first."
        )
        self.run_id = run_id


class LaunchError(RakutenError):
    """The run could not be started (no deployment on the Prefect server, …)."""


@dataclass(frozen=True)
class Launch:
    run_id: str
    where: Where
    name: str


def _state_dir(settings: Settings) -> Path:
    path = settings.launches_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


def where(settings: Settings) -> Where:
    """`local`: the local stack's Prefect and worker; `server`: a Prefect server of your own."""
    return "local" if settings.local_prefect else "server"


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
    settings: Settings,
    overrides: dict[str, Any] | None = None,
    *,
    actor: str = "console",
    via: str = "console",
) -> Launch:
    """Start a training run on the worker for `actor` and return its id at once; `AlreadyRunning` if
    one is. `via`: how they reached us (a principal's `via`: oidc, service-token, local, …)."""
    with FileLock(str(_state_dir(settings) / "launch.lock"), timeout=30):
        active = active_training(settings)
        if active is not None:
            raise AlreadyRunning(active.id)
        name = f"training-{uuid.uuid4().hex[:8]}"
        parameters = {"overrides": overrides or {}, "actor": actor}
        return _start_deployment(settings, parameters, name, run_tags(actor, via))


def start_when_deployed(
    settings: Settings, *, actor: str, via: str = "console", timeout_s: float = 300.0, poll_s: float = 0.5
) -> Launch:
    """`start_training` once the training deployment exists (the stack deploys it while it starts);
    a training already in progress is returned as it is."""

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return start_training(settings, actor=actor, via=via)
        except AlreadyRunning as exc:
            return Launch(exc.run_id, where(settings), exc.run_id)
        except (LaunchError, PrefectUnavailable):
            if time.monotonic() > deadline:
                raise
            time.sleep(poll_s)


def _start_deployment(settings: Settings, parameters: dict[str, Any], name: str, tags: list[str]) -> Launch:
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        with prefect_api(settings):
            # _sync (Prefect's async_dispatch): a sync call even where an event loop runs in this thread
            run = run_deployment(  # type: ignore[call-arg]
                DEPLOYMENT,
                parameters=parameters,
                flow_run_name=name,
                tags=tags,
                timeout=0,
                as_subflow=False,
                _sync=True,
            )
    except httpx.TransportError as exc:
        server = "the local stack's Prefect server" if settings.local_prefect else "the Prefect server"
        raise PrefectUnavailable(
            f"{server.capitalize()} at {settings.prefect_url} does not answer ({exc})."
            + (
                " Start the stack: `make console` (or `python -m core up --detach`)."
                if settings.local_prefect
                else ""
            )
        ) from None
    except ObjectNotFound:
        fix = (
            "restart the local stack (`make console`), which deploys them"
            if settings.local_prefect
            else "run `prefect deploy --all` from the repository root and start a worker "
            f"(`prefect worker start --pool {WORK_POOL}`)"
        )
        raise LaunchError(f"No deployment {DEPLOYMENT!r} on {settings.prefect_url}: {fix}.") from None
    return Launch(str(run.id), where(settings), name)  # type: ignore[union-attr]  # sync call: a FlowRun


def cancel(settings: Settings, run_id: str) -> None:
    """Cancel a run: one no worker has picked up yet is cancelled at once; a running one is marked
    Cancelling and its worker stops its process (the champion is unchanged)."""
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled, Cancelling

    with prefect_client(settings) as client:
        try:
            run = client.read_flow_run(run_uuid(run_id))
        except ObjectNotFound:
            raise RunNotFound(f"No flow run {run_id} in the Prefect API.") from None
        waiting = run.state_type is not None and run.state_type.value in {"SCHEDULED", "PAUSED"}
        client.set_flow_run_state(run.id, Cancelled() if waiting else Cancelling(), force=True)


def worker_ready(settings: Settings) -> bool | None:
    """Whether a worker polls the work pool (else started runs wait); None when the pool does not
    exist (nothing deployed yet)."""
    from prefect.exceptions import ObjectNotFound

    with prefect_client(settings) as client:
        try:
            pool = client.read_work_pool(WORK_POOL)
        except ObjectNotFound:
            return None
    return pool.status is not None and pool.status.value == "READY"
