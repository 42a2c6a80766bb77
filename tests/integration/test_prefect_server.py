"""Server mode against a real `prefect server` and `prefect worker` (fixtures): the deployments of
prefect.yaml as the server holds them, a training started by the launcher (as the console does) and
by the CLI runs on the worker to Completed with steps, logs and its summary; a second start while one
runs is refused; a run of the scheduled monitoring deployment is executed by the worker when due;
cancelling stops a running training; the Pipeline runs page in server mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.config import Settings, get_settings
from core.orchestration.flow_runs import RunInfo, read_run
from tests.integration.conftest import REPO, PrefectStack

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(prefect_stack: PrefectStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """This process's settings (and `get_settings()`, for the page) point at the stack's project and
    Prefect server."""
    monkeypatch.setenv("RAKUTEN_ROOT", str(prefect_stack.root))
    monkeypatch.setenv("PREFECT_API_URL", prefect_stack.api_url)
    for var in ("RAKUTEN_API_URL", "RAKUTEN_MLFLOW_TRACKING_URI", "RAKUTEN_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield Settings(root=prefect_stack.root, prefect_api_url=prefect_stack.api_url)
    get_settings.cache_clear()


def _finished(settings: Settings, run_id: str, timeout_s: float = 300) -> RunInfo:
    deadline = time.monotonic() + timeout_s
    while not (run := read_run(settings, run_id)).final:
        assert time.monotonic() < deadline, f"run {run_id} still {run.state} after {timeout_s:.0f} s"
        time.sleep(0.5)
    settle = (
        time.monotonic() + 15
    )  # task runs report their states as events: the last may come after the run's
    while run.state == "COMPLETED" and run.progress[0] < run.progress[1] and time.monotonic() < settle:
        time.sleep(0.5)
        run = read_run(settings, run_id)
    return run


def _logs(settings: Settings, run_id: str) -> str:
    """All the run's log lines (they reach the API in batches, shortly after the state)."""
    from core.orchestration.flow_runs import run_logs

    time.sleep(3)
    return "\n".join(line.message for line in run_logs(settings, run_id))


def test_deployments_from_prefect_yaml(settings: Settings) -> None:
    from core.orchestration.flow_runs import prefect_client, recent_runs

    with prefect_client(settings) as client:
        training = client.read_deployment_by_name("training-pipeline/training")
        monitor = client.read_deployment_by_name("monitor-and-retrain/monitor-and-retrain")
    assert training.work_pool_name == monitor.work_pool_name == "rakuten-process"
    assert not training.schedules
    assert [s.schedule.cron for s in monitor.schedules] == ["0 9 * * *"]  # type: ignore[union-attr]
    assert training.global_concurrency_limit is not None and training.global_concurrency_limit.limit == 1
    assert training.entrypoint == "core/orchestration/flows.py:training_pipeline"
    deadline = time.monotonic() + 90  # the server's scheduler creates the next runs of the schedule
    while not (upcoming := recent_runs(settings, limit=5, scheduled=True)):
        assert time.monotonic() < deadline, "no scheduled monitoring runs"
        time.sleep(1)
    assert upcoming[0].flow == "monitor-and-retrain"
    assert upcoming[0].started is not None and upcoming[0].started.hour in {7, 8}  # 09:00 Paris in UTC


def test_launcher_starts_on_the_worker_and_refuses_a_second_start(settings: Settings) -> None:
    from core.orchestration.flow_runs import run_summary
    from core.orchestration.launcher import AlreadyRunning, active_training, start_training, worker_ready

    assert worker_ready(settings) is True or _worker_ready_soon(settings)
    launch = start_training(settings, {"text.C": 0.5}, actor="test")
    assert launch.where == "server"
    with pytest.raises(AlreadyRunning) as refused:
        start_training(settings)
    assert refused.value.run_id == launch.run_id
    assert (active := active_training(settings)) is not None and active.id == launch.run_id

    run = _finished(settings, launch.run_id)
    assert run.state == "COMPLETED", run.message
    assert run.progress[:2] == (5, 5) and [s.name for s in run.steps][:2] == ["ingest", "features"]
    assert run.parameters == {"overrides": {"text.C": 0.5}, "actor": "test"}
    logs = _logs(settings, launch.run_id)
    assert "promoted to champion" in logs and "stacking: 1 / 1" in logs  # the steps' own log lines
    summary = run_summary(settings, launch.run_id)
    assert summary is not None and "Model v1" in summary
    assert (settings.root / "data" / "processed" / "predictions.csv").is_file()  # the worker's work
    assert active_training(settings) is None


def _worker_ready_soon(settings: Settings) -> bool:
    from core.orchestration.launcher import worker_ready

    deadline = time.monotonic() + 30  # the worker has just been started by the fixture
    while not worker_ready(settings):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_a_scheduled_monitoring_run_is_executed_by_the_worker(settings: Settings) -> None:
    """What the daily schedule does at 09:00, due in two seconds: the worker picks it up and runs it."""
    from prefect.states import Scheduled

    from core.orchestration.flow_runs import prefect_client, run_summary

    with prefect_client(settings) as client:
        deployment = client.read_deployment_by_name("monitor-and-retrain/monitor-and-retrain")
        run = client.create_flow_run_from_deployment(
            deployment.id, state=Scheduled(scheduled_time=datetime.now(UTC) + timedelta(seconds=2))
        )
    done = _finished(settings, str(run.id))
    assert done.state == "COMPLETED", done.message
    assert done.flow == "monitor-and-retrain" and done.progress[:2] == (2, 2)
    summary = run_summary(settings, str(run.id))
    assert summary is not None and "no retraining" in summary  # no predictions served yet


def test_cancel_stops_a_run_on_the_worker(settings: Settings) -> None:
    from core.orchestration.launcher import active_training, cancel, start_training

    launch = start_training(settings, actor="test")
    deadline = time.monotonic() + 60
    while read_run(settings, launch.run_id).state != "RUNNING":
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    cancel(settings, launch.run_id)
    run = _finished(settings, launch.run_id, timeout_s=60)
    assert run.state == "CANCELLED"
    assert active_training(settings) is None


def test_cli_start_follows_the_run_on_the_worker(settings: Settings, prefect_stack: PrefectStack) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env |= {
        "RAKUTEN_ROOT": str(prefect_stack.root),
        "PREFECT_API_URL": prefect_stack.api_url,
        "COLUMNS": "200",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core", "flow", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    started = cli("start", "--set", "text.C=0.7")
    assert started.returncode == 0, started.stderr[-3000:]
    out = started.stderr
    assert "in server mode" in out and "COMPLETED" in out and "step 5/5" in out
    assert "evaluate" in out and "Model v" in out  # followed to the end, then the summary
    listed = cli("runs", "--limit", "3")
    assert listed.returncode == 0, listed.stderr[-2000:]
    run_id = re.search(r"Started \S+ \(([0-9a-f-]{36})\)", out)
    assert run_id and run_id.group(1) in listed.stdout + listed.stderr
    assert "Next scheduled: monitor-and-retrain" in listed.stderr.replace("\n", " ")


def test_pipeline_runs_page_in_server_mode(settings: Settings) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(REPO) / "app" / "Home.py"), default_timeout=120).run()
    at.switch_page("../pages/pipeline_runs.py").run()
    assert not at.exception, at.exception
    assert any("Server mode" in c.value for c in at.caption)
    assert not at.warning, [w.value for w in at.warning]  # the worker polls the pool
    at.button(key="retrain").click().run()
    assert any("Started training run" in s.value for s in at.success), [e.value for e in at.error]
    deadline = time.monotonic() + 300
    while "COMPLETED" not in (text := " ".join(m.value for m in at.markdown)):
        assert "FAILED" not in text and "CRASHED" not in text, text
        assert time.monotonic() < deadline, "the run did not complete"
        time.sleep(1)
        at.run()
        assert not at.exception, at.exception
    scheduled = at.dataframe[-1].value  # next scheduled runs, from the deployment's schedule
    assert set(scheduled["flow"]) == {"monitor-and-retrain"}


def test_page_and_cli_say_when_the_prefect_server_is_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.integration.conftest import _free_port

    down = f"http://127.0.0.1:{_free_port()}/api"
    monkeypatch.setenv("RAKUTEN_ROOT", str(tmp_path))
    monkeypatch.setenv("PREFECT_API_URL", down)
    get_settings.cache_clear()
    try:
        at = AppTest.from_file(str(Path(REPO) / "app" / "Home.py"), default_timeout=60).run()
        at.switch_page("../pages/pipeline_runs.py").run()
        assert not at.exception, at.exception
        assert any("does not answer" in e.value for e in at.error)
        assert at.button(key="retrain").disabled  # shown, but nothing to click that cannot work
    finally:
        get_settings.cache_clear()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    done = subprocess.run(
        [sys.executable, "-m", "core", "flow", "start"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env | {"RAKUTEN_ROOT": str(tmp_path), "PREFECT_API_URL": down},
    )
    assert done.returncode == 2 and "does not answer" in done.stderr, done.stderr[-2000:]
