"""The launcher on the local stack (a real Prefect server and worker under `python -m core up`): a
start returns the run id at once, the worker runs it to Completed, a second start while it runs is
refused (with the active run's id), the run is read back from Prefect as the console would after a
browser reload, and a cancel stops the run's process. A run carries who started it (its `actor`
parameter, its `user:` and `via:` tags) into the registry move it makes, audited once by the flow."""

from __future__ import annotations

import time

import psutil
import pytest

from core.config import Settings
from core.orchestration.flow_runs import RunInfo
from core.storage.audit import AuditFilter, AuditTrail
from tests.conftest import LocalStack

pytestmark = pytest.mark.slow


@pytest.fixture
def project(on_stack: LocalStack) -> Settings:
    return Settings()


def test_start_follow_and_refuse_a_second_start(project: Settings) -> None:
    from core.orchestration.launcher import AlreadyRunning, active_training, start_training

    start_training(project, {"text.C": 0.5}, actor="warm-up")  # the first call pays Prefect's imports
    first = active_training(project)
    assert first is not None
    started = time.monotonic()
    with pytest.raises(AlreadyRunning) as refused:
        start_training(project)
    assert refused.value.run_id == first.id and time.monotonic() - started < 5
    _wait_final(project, first.id)

    started = time.monotonic()
    launch = start_training(project, {"text.C": 0.5}, actor="test", via="service-token")
    assert launch.where == "local" and time.monotonic() - started < 5  # the id at once, not after the run
    active = active_training(project)
    assert active is not None and active.id == launch.run_id
    run = _wait_final(project, launch.run_id)
    assert run.state == "COMPLETED", run.message
    assert run.progress[:2] == (5, 5)
    assert run.parameters["overrides"] == {"text.C": 0.5} and run.parameters["actor"] == "test"
    assert run.user == "test" and {"user:test", "via:service-token"} <= set(run.tags)
    assert active_training(project) is None  # a new start is allowed again
    trail = AuditTrail.open(str(project.audit_url))
    [row] = trail.read(AuditFilter(actors=["test"])).to_dict("records")  # the flow's registry move
    assert (row["entry"], row["via"], row["origin"]) == ("flow", "service-token", launch.run_id)


def test_cancel_stops_the_run_on_the_worker(project: Settings) -> None:
    from core.orchestration.flow_runs import read_run
    from core.orchestration.launcher import active_training, cancel, start_training

    launch = start_training(project, actor="test")
    deadline = time.monotonic() + 60
    while read_run(project, launch.run_id).state != "RUNNING":
        assert time.monotonic() < deadline, read_run(project, launch.run_id).state
        time.sleep(0.3)
    engines = _flow_processes(project)
    assert engines, "no flow-run process under the worker"
    cancel(project, launch.run_id)
    run = _wait_final(project, launch.run_id, within_s=60)
    assert run.state == "CANCELLED", run.state
    _, alive = psutil.wait_procs(engines, timeout=30)
    assert not alive, f"still running: {alive}"
    assert active_training(project) is None


def _flow_processes(project: Settings) -> list[psutil.Process]:
    """This stack's flow-run processes: under the worker, the fork server's clients (or a
    `prefect.engine` of its own), and under the fork server, the runs it forked."""
    from core.stack.supervisor import status

    pids = {p.name: p.pid for p in status(project) or [] if p.pid}
    clients = [
        p
        for p in psutil.Process(pids["worker"]).children(recursive=True)
        if any(part in " ".join(p.cmdline()) for part in ("forkserver run", "prefect.engine"))
    ]
    forked = psutil.Process(pids["runner"]).children(recursive=True)
    assert not clients or forked, "a flow run not started by the fork server"
    return clients + forked


def _wait_final(project: Settings, run_id: str, within_s: float = 300) -> RunInfo:
    from core.orchestration.flow_runs import read_run

    deadline = time.monotonic() + within_s
    while not (run := read_run(project, run_id)).final:
        assert time.monotonic() < deadline, f"the run did not finish ({run.state})"
        time.sleep(1)
    return run
