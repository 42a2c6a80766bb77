"""The read side of orchestration: a flow run's state, its steps (n of N), the running step's own
progress, its logs, recent and scheduled runs — read from the Prefect API, so whoever asks (CLI,
console, after a browser reload) sees the same truth.

Every call goes through `prefect_client(settings)`, which talks to the Prefect API the settings name —
a server of your own (`PREFECT_API_URL`) or the local stack's (`python -m core up`, on
`prefect_port`) — and turns "cannot reach it" into `PrefectUnavailable`. Prefect never starts a
temporary per-process server here (`prefect_environment`).
"""
# Size: the whole read side of Prefect (client scope, states, steps, logs, lists) behind one error type.

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

import httpx

from core.config import Settings
from core.errors import RakutenError
from core.net import refused
from core.orchestration.step_progress import description_lines
from core.pipeline.chain import STEP_NAMES

# Lazy imports: Prefect (~2–4 s to import on 2 cores) loads in the calls that use it: the console's first
# page and the CLI import this module without it.

STEPS: dict[str, tuple[str, ...]] = {
    "training-pipeline": STEP_NAMES,
    "monitor-and-retrain": ("signals", "drift"),
}
# A run's tags name who started it and how (a principal's `via`): Prefect's UI shows and filters by them.
USER_TAG: Final = "user:"
VIA_TAG: Final = "via:"


if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient


class RunNotFound(RakutenError):
    """No flow run with that id in the configured Prefect API."""


class PrefectUnavailable(RakutenError):
    """The configured Prefect server does not answer (down, wrong URL, network)."""


def prefect_environment(settings: Settings) -> dict[str, str]:
    """Prefect's configuration for a process this one starts (the stack's server, worker, deploy): the
    configured API or the local stack's; never a temporary per-process server (two processes starting
    one at once collided on its port); no telemetry; the local stack's state under the project."""
    env = {
        "PREFECT_API_URL": settings.prefect_url,
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    if settings.local_prefect:
        env["PREFECT_HOME"] = str(settings.prefect_home)
    return env


# Building Prefect settings and a client costs ~20 ms each, a request ~3 ms: both are made once per
# (Settings' Prefect configuration, enclosing Prefect settings) and reused — the live view asks several
# times a second.
_SCOPES: dict[tuple[tuple[tuple[str, str], ...], int], Any] = {}
_CLIENTS: dict[tuple[tuple[tuple[str, str], ...], int], SyncPrefectClient] = {}
_LOCK = threading.Lock()


@contextmanager
def prefect_api(settings: Settings) -> Iterator[None]:
    """Prefect calls inside this block (clients, deployments, a flow run in this process and its
    background log and event workers, which copy the context) use the configuration `settings` give —
    whatever the environment this process was started with says."""
    import prefect.context

    with _LOCK:
        key = _scope_key(settings)
        if key not in _SCOPES:  # holds `outer` too, so its id cannot be reused by another object
            outer = prefect.context.get_settings_context()
            _SCOPES[key] = (outer.settings, _scoped(outer.settings, settings))
    outer = prefect.context.get_settings_context()
    with prefect.context.SettingsContext(profile=outer.profile, settings=_SCOPES[key][1]):
        yield


def _scope_key(settings: Settings) -> tuple[tuple[tuple[str, str], ...], int]:
    import prefect.context

    return tuple(sorted(prefect_environment(settings).items())), id(
        prefect.context.get_settings_context().settings
    )


def _scoped(outer: Any, settings: Settings) -> Any:
    """`outer` Prefect settings with the values of `prefect_environment(settings)`."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE,
        PREFECT_SERVER_ANALYTICS_ENABLED,
    )

    env = prefect_environment(settings)
    names = {
        "PREFECT_API_URL": PREFECT_API_URL,
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": PREFECT_SERVER_ALLOW_EPHEMERAL_MODE,
        "PREFECT_SERVER_ANALYTICS_ENABLED": PREFECT_SERVER_ANALYTICS_ENABLED,
        "PREFECT_HOME": PREFECT_HOME,
    }
    return outer.copy_with_update(updates={names[k]: v for k, v in env.items()})


@contextmanager
def prefect_client(settings: Settings) -> Iterator[SyncPrefectClient]:
    """A synchronous client of the configured Prefect API (kept open and shared: httpx clients are
    thread-safe); `PrefectUnavailable` when it cannot be reached (server down, wrong URL)."""

    with prefect_api(settings):
        from prefect.client.orchestration import get_client

        key = _scope_key(settings)
        # the local stack's server, still starting, is said at once (Prefect's client retries a refused
        # connect for seconds); a loopback connect costs ~0.1 ms, a remote one a round trip: not asked
        if settings.local_prefect and refused(settings.prefect_url):
            raise _unavailable(settings, "connection refused")
        try:
            with _LOCK:
                if key not in _CLIENTS:
                    client = get_client(sync_client=True)
                    client.__enter__()  # closed with the process
                    _CLIENTS[key] = client
            yield _CLIENTS[key]
        except httpx.TransportError as exc:
            raise _unavailable(settings, str(exc)) from None


def _unavailable(settings: Settings, reason: str) -> PrefectUnavailable:
    if settings.local_prefect:
        return PrefectUnavailable(
            f"The local stack's Prefect server ({settings.prefect_url}) does not answer ({reason}): if "
            "the stack is starting, it will within a minute; else start it: `make console` (or "
            "`python -m core up --detach`)."
        )
    return PrefectUnavailable(
        f"The Prefect server at {settings.prefect_api_url} does not answer ({reason}). Start it "
        "(`prefect server start`, or the full stack), or unset PREFECT_API_URL to use the local stack "
        "(`make console`)."
    )


def check_prefect(settings: Settings) -> None:
    """`PrefectUnavailable` unless the configured Prefect API answers."""
    with prefect_client(settings) as client:
        client.hello()


RUNNING: frozenset[str] = frozenset({"RUNNING", "RETRYING"})


@dataclass(frozen=True)
class Step:
    name: str
    state: str
    started: datetime | None
    seconds: float | None
    task_run_id: str | None = None


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    flow: str
    state: str
    message: str | None
    started: datetime | None
    ended: datetime | None
    seconds: float | None
    parameters: dict[str, Any]
    steps: list[Step] = field(default_factory=list)
    tags: tuple[str, ...] = ()

    @property
    def user(self) -> str | None:
        """Who started the run: its `user:` tag, else its `actor` parameter (runs from before the tag)."""
        return tag_value(self.tags, USER_TAG) or self.parameters.get("actor")

    @property
    def final(self) -> bool:
        return self.state in {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}

    @property
    def progress(self) -> tuple[int, int, str | None]:
        """(steps done, steps in the flow, the step running now)."""
        planned = STEPS.get(self.flow, tuple(s.name for s in self.steps))
        done = sum(1 for s in self.steps if s.state == "COMPLETED" and s.name in planned)
        running = next((s.name for s in reversed(self.steps) if s.state in RUNNING), None)
        return done, len(planned), running

    @property
    def running_tasks(self) -> set[str]:
        """The task run ids of the steps running now."""
        return {s.task_run_id for s in self.steps if s.state in RUNNING and s.task_run_id}


@dataclass(frozen=True)
class StepProgress:
    """A step's own progress, as its task run last published it (`core.orchestration.step_progress`)."""

    percent: float  # 0–100, of the stage on the first line
    lines: tuple[str, ...]  # e.g. "Dask tasks (2 workers): 12 / 40", newest stage first
    task_run_id: str | None


@dataclass(frozen=True)
class LogLine:
    at: datetime
    level: str
    message: str


def run_tags(actor: str, via: str) -> list[str]:
    """The tags naming who started a run (`user:alice@example.com`) and how (`via:oidc`)."""
    return [f"{USER_TAG}{actor}", f"{VIA_TAG}{via}"]


def tag_value(tags: Sequence[str], prefix: str) -> str | None:
    """The value of the first tag with this prefix (`user:` → `alice@example.com`), if any."""
    return next((tag.removeprefix(prefix) for tag in tags if tag.startswith(prefix)), None)


def run_uuid(run_id: str | UUID) -> UUID:
    """The id as a UUID; `RunNotFound` when it cannot be one."""
    try:
        return run_id if isinstance(run_id, UUID) else UUID(str(run_id))
    except ValueError:
        raise RunNotFound(f"{run_id!r} is not a flow run id (a UUID such as the CLI prints).") from None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return ((end or datetime.now(start.tzinfo)) - start).total_seconds()


_FLOW_NAMES: dict[UUID, str] = {}  # flow ids never change name: one lookup per flow per process


def _flow_name(client: SyncPrefectClient, flow_id: UUID) -> str:
    if flow_id not in _FLOW_NAMES:
        _FLOW_NAMES[flow_id] = client.read_flow(flow_id).name
    return _FLOW_NAMES[flow_id]


def run_info(client: SyncPrefectClient, run: Any, steps: list[Step] | None = None) -> RunInfo:
    """A Prefect flow run as the platform shows it (steps only when given)."""
    return RunInfo(
        id=str(run.id),
        name=run.name,
        flow=_flow_name(client, run.flow_id),
        state=run.state_type.value if run.state_type else "PENDING",
        message=run.state.message if run.state else None,
        started=run.start_time or run.expected_start_time,
        ended=run.end_time,
        seconds=_seconds(run.start_time, run.end_time),
        parameters=dict(run.parameters or {}),
        steps=steps or [],
        tags=tuple(run.tags or ()),
    )


def read_run(settings: Settings, run_id: str | UUID) -> RunInfo:
    """A run with its steps (two API calls, what the live view reads every second)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.exceptions import ObjectNotFound

    uid = run_uuid(run_id)
    with prefect_client(settings) as client:
        try:
            run = client.read_flow_run(uid)
        except ObjectNotFound:
            raise RunNotFound(f"No flow run {uid} in the Prefect API.") from None
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uid])))
        steps = [
            Step(
                name=t.name.rsplit("-", 1)[0],
                state=t.state_type.value if t.state_type else "PENDING",
                started=t.start_time,
                seconds=_seconds(t.start_time, t.end_time),
                task_run_id=str(t.id),
            )
            for t in sorted(tasks, key=lambda t: (t.start_time is None, t.start_time or t.created))
        ]
        return run_info(client, run, steps)


def step_progress(settings: Settings, run_id: str | UUID) -> StepProgress | None:
    """The progress a step of the run published last (its latest-updated progress artifact), if any."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType
    from prefect.client.schemas.sorting import ArtifactSort

    uid = run_uuid(run_id)
    with prefect_client(settings) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uid]), type=ArtifactFilterType(any_=["progress"])
            ),
            sort=ArtifactSort.UPDATED_DESC,
            limit=1,
        )
    if not found:
        return None
    latest = found[0]
    percent = float(latest.data) if isinstance(latest.data, int | float) else 0.0
    task = str(latest.task_run_id) if latest.task_run_id else None
    return StepProgress(percent, description_lines(latest.description), task)


def run_logs(
    settings: Settings,
    run_id: str | UUID,
    *,
    last: int | None = None,
    skip: int = 0,
    most: int = 10_000,
) -> list[LogLine]:
    """The run's log lines (its tasks' included), oldest first, after the first `skip` (to follow a
    run) — the `last` N of them if given. The API pages by 200; at most `most` lines are read."""

    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    uid = run_uuid(run_id)
    by_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uid]))
    with prefect_client(settings) as client:
        if last is not None and last <= 200 and not skip:  # one call: newest first, then reversed
            logs = client.read_logs(log_filter=by_run, sort=LogSort.TIMESTAMP_DESC, limit=last)
            logs.reverse()
        else:
            page = 200
            logs = []
            while len(logs) < most:
                batch = client.read_logs(
                    log_filter=by_run, sort=LogSort.TIMESTAMP_ASC, limit=page, offset=skip + len(logs)
                )
                logs += batch
                if len(batch) < page:
                    break
    lines = [LogLine(log.timestamp, logging.getLevelName(log.level), log.message) for log in logs]
    return lines[-last:] if last else lines


def recent_runs(
    settings: Settings, *, limit: int = 20, scheduled: bool = False, flows: Sequence[str] | None = None
) -> list[RunInfo]:
    """The latest flow runs of the platform's flows (or of `flows`), newest first, without their steps
    — or, with `scheduled`, the next runs the deployments' schedules created (soonest first)."""

    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    now = datetime.now(UTC)
    when = (
        FlowRunFilter(
            expected_start_time=FlowRunFilterExpectedStartTime(after_=now),  # type: ignore[arg-type]
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
        )
        if scheduled
        else FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(before_=now))  # type: ignore[arg-type]
    )
    with prefect_client(settings) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(flows or STEPS))),
            flow_run_filter=when,
            sort=FlowRunSort.EXPECTED_START_TIME_ASC if scheduled else FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=limit,
        )
        return [run_info(client, r) for r in runs]


def run_summary(settings: Settings, run_id: str | UUID) -> str | None:
    """The Markdown artifact a run left (training outcome or retrain decision), if any."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    uid = run_uuid(run_id)
    with prefect_client(settings) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uid]))
        )
    found = [a for a in artifacts if a.type == "markdown" and a.data]
    return str(found[-1].data) if found else None
