"""The read side of orchestration: a flow run's state, its steps (n of N), its logs, recent runs — read
from the Prefect API, so whoever asks (CLI, console, after a browser reload) sees the same truth.

`configure_prefect(settings)` must run before Prefect is imported by an entry point: with no
`PREFECT_API_URL`, runs live in the project's own embedded Prefect database (`<root>/.prefect`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from core.config import Settings
from core.errors import RakutenError

STEPS: dict[str, tuple[str, ...]] = {
    "training-pipeline": ("ingest", "validate", "features", "train", "evaluate", "predict"),
    "monitor-and-retrain": ("signals",),
}


class RunNotFound(RakutenError):
    """No flow run with that id in the configured Prefect API."""


def configure_prefect(settings: Settings) -> None:
    """Point Prefect at the configured server, or at the project's embedded store; no telemetry."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if settings.prefect_api_url:
        os.environ["PREFECT_API_URL"] = settings.prefect_api_url
    else:
        os.environ.setdefault("PREFECT_HOME", str(settings.root / ".prefect"))


@dataclass(frozen=True)
class Step:
    name: str
    state: str
    started: datetime | None
    seconds: float | None


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

    @property
    def final(self) -> bool:
        return self.state in {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}

    @property
    def progress(self) -> tuple[int, int, str | None]:
        """(steps done, steps in the flow, the step running now)."""
        planned = STEPS.get(self.flow, tuple(s.name for s in self.steps))
        done = sum(1 for s in self.steps if s.state == "COMPLETED" and s.name in planned)
        running = next((s.name for s in reversed(self.steps) if s.state in {"RUNNING", "RETRYING"}), None)
        return done, len(planned), running


@dataclass(frozen=True)
class LogLine:
    at: datetime
    level: str
    message: str


def _uuid(run_id: str | UUID) -> UUID:
    try:
        return run_id if isinstance(run_id, UUID) else UUID(str(run_id))
    except ValueError:
        raise RunNotFound(f"{run_id!r} is not a flow run id (a UUID such as the CLI prints).") from None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return ((end or datetime.now(start.tzinfo)) - start).total_seconds()


def read_run(run_id: str | UUID) -> RunInfo:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.exceptions import ObjectNotFound

    uid = _uuid(run_id)
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(uid)
        except ObjectNotFound:
            raise RunNotFound(f"No flow run {uid} in the Prefect API.") from None
        flow = client.read_flow(run.flow_id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uid])))
    steps = [
        Step(
            name=t.name.rsplit("-", 1)[0],
            state=t.state_type.value if t.state_type else "PENDING",
            started=t.start_time,
            seconds=_seconds(t.start_time, t.end_time),
        )
        for t in sorted(tasks, key=lambda t: (t.start_time is None, t.start_time or t.created))
    ]
    return RunInfo(
        id=str(run.id),
        name=run.name,
        flow=flow.name,
        state=run.state_type.value if run.state_type else "PENDING",
        message=run.state.message if run.state else None,
        started=run.start_time,
        ended=run.end_time,
        seconds=_seconds(run.start_time, run.end_time),
        parameters=dict(run.parameters or {}),
        steps=steps,
    )


def run_logs(run_id: str | UUID, *, last: int | None = None, most: int = 10_000) -> list[LogLine]:
    """The run's log lines (its tasks' included), oldest first — the `last` N of them if given.
    The API pages by 200; at most `most` lines are read."""
    import logging

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    uid = _uuid(run_id)
    page = 200
    logs: list[Any] = []
    with get_client(sync_client=True) as client:
        while len(logs) < most:
            batch = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uid])),
                sort=LogSort.TIMESTAMP_ASC,
                limit=page,
                offset=len(logs),
            )
            logs += batch
            if len(batch) < page:
                break
    lines = [LogLine(log.timestamp, logging.getLevelName(log.level), log.message) for log in logs]
    return lines[-last:] if last else lines


def recent_runs(*, limit: int = 20) -> list[RunInfo]:
    """The latest flow runs of the platform's flows (newest first, without their steps)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(STEPS))),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=limit,
        )
        flows = {f.id: f.name for f in (client.read_flow(fid) for fid in {r.flow_id for r in runs})}
    return [
        RunInfo(
            id=str(r.id),
            name=r.name,
            flow=flows[r.flow_id],
            state=r.state_type.value if r.state_type else "PENDING",
            message=r.state.message if r.state else None,
            started=r.start_time or r.expected_start_time,
            ended=r.end_time,
            seconds=_seconds(r.start_time, r.end_time),
            parameters=dict(r.parameters or {}),
        )
        for r in runs
    ]


def run_summary(run_id: str | UUID) -> str | None:
    """The Markdown artifact a run left (training outcome or retrain decision), if any."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    uid = _uuid(run_id)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uid]))
        )
    found = [a for a in artifacts if a.type == "markdown" and a.data]
    return str(found[-1].data) if found else None
