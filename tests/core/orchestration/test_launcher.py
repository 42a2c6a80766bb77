"""The launcher in embedded mode: a start returns the run id within seconds, the run progresses to
Completed in the background, a second start while it runs is refused (with the active run's id),
and the run is read back from Prefect as the console would after a browser reload."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.config import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def project(small_project: Path) -> Settings:
    return Settings(root=small_project)


def test_start_follow_and_refuse_a_second_start(project: Settings) -> None:
    from core.orchestration.launcher import AlreadyRunning, active_training, start_training
    from core.orchestration.runs import read_run

    started = time.monotonic()
    launch = start_training(project, {"text.C": 0.5}, actor="test")
    assert launch.mode == "embedded" and time.monotonic() - started < 60
    with pytest.raises(AlreadyRunning) as refused:
        start_training(project)
    assert refused.value.run_id in {launch.run_id, launch.name}
    active = active_training(project)
    assert active is not None and active.id == launch.run_id

    seen_steps: set[str] = set()
    deadline = time.monotonic() + 300
    while not (run := read_run(project, launch.run_id)).final:
        assert time.monotonic() < deadline, "the run did not finish"
        seen_steps |= {s.name for s in run.steps}
        time.sleep(1)
    assert run.state == "COMPLETED", run.message
    assert run.progress[:2] == (6, 6)
    assert run.parameters["overrides"] == {"text.C": 0.5} and run.parameters["actor"] == "test"
    assert active_training(project) is None  # a new start is allowed again


def test_cancel_stops_an_embedded_run(project: Settings) -> None:
    from core.orchestration.launcher import active_training, cancel, start_training
    from core.orchestration.runs import read_run

    launch = start_training(project, actor="test")
    pid = int((project.models / ".runs" / f"{launch.run_id}.pid").read_text())
    cancel(project, launch.run_id)
    deadline = time.monotonic() + 30
    while read_run(project, launch.run_id).state != "CANCELLED":
        assert time.monotonic() < deadline, read_run(project, launch.run_id).state
        time.sleep(0.5)
    import psutil

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, "still running"
    assert active_training(project) is None
