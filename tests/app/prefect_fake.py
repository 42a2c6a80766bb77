"""A small honest fake of the Prefect read side the console uses (`core.orchestration.flow_runs` and the
launcher): runs held in memory, patched in where the console looks them up — for pages tested without
the local stack (tests/app/test_pipeline_runs_page.py runs the real one)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.config import Settings
from core.orchestration import flow_runs, launcher
from core.orchestration.flow_runs import LogLine, RunInfo, RunNotFound, Step
from core.pipeline.chain import STEP_NAMES


def run(name: str, state: str, *, minutes_ago: float, running_step: str | None = None) -> RunInfo:
    """A training run; a running one has completed the steps before `running_step`."""
    started = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    final = state in {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
    steps = []
    if running_step is not None:
        at = STEP_NAMES.index(running_step)
        steps = [Step(s, "COMPLETED", started, 1.0, str(uuid.uuid4())) for s in STEP_NAMES[:at]]
        steps.append(Step(running_step, "RUNNING", started, None, str(uuid.uuid4())))
    elif state == "COMPLETED":
        steps = [Step(s, "COMPLETED", started, 1.0, str(uuid.uuid4())) for s in STEP_NAMES]
    return RunInfo(
        id=str(uuid.uuid4()),
        name=name,
        flow=launcher.FLOW,
        state=state,
        message=None,
        started=started,
        ended=started + timedelta(seconds=42) if final else None,
        seconds=42.0 if final else None,
        parameters={},
        steps=steps,
    )


@dataclass
class FakePrefect:
    runs: list[RunInfo] = field(default_factory=list)  # newest first
    summaries: dict[str, str] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)

    def recent_runs(self, settings: Settings, *, limit: int = 20, scheduled: bool = False, **_: Any) -> Any:
        return [] if scheduled else [replace(r, steps=[]) for r in self.runs[:limit]]

    def read_run(self, settings: Settings, run_id: Any) -> RunInfo:
        found = next((r for r in self.runs if r.id == str(run_id)), None)
        if found is None:
            raise RunNotFound(f"No flow run {run_id} in the Prefect API.")
        return found

    def active_training(self, settings: Settings) -> RunInfo | None:
        return next((replace(r, steps=[]) for r in self.runs if not r.final), None)

    def start_training(self, settings: Settings, overrides: Any = None, **_: Any) -> launcher.Launch:
        active = self.active_training(settings)
        if active is not None:
            raise launcher.AlreadyRunning(active.id)
        new = run(f"fresh-run-{len(self.started)}", "PENDING", minutes_ago=0)
        self.runs.insert(0, new)
        self.started.append(new.id)
        return launcher.Launch(new.id, "local", new.name)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakePrefect:
        monkeypatch.setattr(flow_runs, "check_prefect", lambda settings: None)
        monkeypatch.setattr(flow_runs, "recent_runs", self.recent_runs)
        monkeypatch.setattr(flow_runs, "read_run", self.read_run)
        monkeypatch.setattr(
            flow_runs, "run_summary", lambda settings, run_id: self.summaries.get(str(run_id))
        )
        monkeypatch.setattr(flow_runs, "run_logs", lambda settings, run_id, **_: _logs())
        monkeypatch.setattr(flow_runs, "step_progress", lambda settings, run_id: None)
        monkeypatch.setattr(launcher, "worker_ready", lambda settings: True)
        monkeypatch.setattr(launcher, "active_training", self.active_training)
        monkeypatch.setattr(launcher, "start_training", self.start_training)
        return self


def _logs() -> list[LogLine]:
    return [LogLine(datetime.now(UTC), "INFO", "a step's log line")]
