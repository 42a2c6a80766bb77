"""Both flows end to end under Prefect's test harness (a temporary local Prefect API) on tiny demo data:
a registered champion and predictions afterwards, one task per step, the summary artifact; a failing
step fails the run and leaves the champion as it was; monitor-and-retrain decides from the inference log.
A run acts for who started it: the registry's history and one audit row (entry "flow", origin the run's
id) name them; the scheduled monitoring retrains as its schedule.
A step's live progress is one progress artifact of its task run, updated as it goes and read back as the
console reads it; a Prefect API error while publishing it does not fail the step."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.config import Settings, get_settings
from core.data.demo.generator import DemoSpec, write_demo
from core.storage.audit import AuditFilter, AuditTrail
from core.storage.inference_log import InferenceRecord, open_engine, write
from core.tracking.registry import open_registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    mp = pytest.MonkeyPatch()
    mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline: no telemetry errors in the logs
    with prefect_test_harness(server_startup_timeout=120):
        yield
    mp.undo()


@pytest.fixture(scope="module")
def flow_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from tests.conftest import clean_env

    root = tmp_path_factory.mktemp("flows") / "project"
    root.mkdir()
    write_demo(root / "data" / "raw", DemoSpec(rows=1500, seed=11), workers=2)
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    clean_env(mp, root)
    yield root
    mp.undo()
    get_settings.cache_clear()


@pytest.fixture
def harness_settings(harness: None, flow_project: Path) -> Settings:
    """The project's settings pointing at the harness's Prefect API (what the console reads)."""
    from prefect.settings import PREFECT_API_URL

    return Settings(root=flow_project, prefect_api_url=PREFECT_API_URL.value())


def progress_artifacts(flow_run_id: object) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

    by_run = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), type=ArtifactFilterType(any_=["progress"])
    )
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=by_run)


def champion(root: Path) -> int | None:
    settings = Settings(root=root)
    return open_registry(settings).champion()


def task_names(flow_run_id: object) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r.name.rsplit("-", 1)[0] for r in sorted(runs, key=lambda r: r.start_time or datetime.now(UTC))]


def flow_rows(root: Path) -> list[dict[str, Any]]:
    """The audit rows flows wrote, oldest first."""
    trail = AuditTrail.open(str(Settings(root=root).audit_url))
    return [r for r in trail.read(AuditFilter()).to_dict("records")[::-1] if r["entry"] == "flow"]


def test_training_pipeline_registers_promotes_and_predicts(harness: None, flow_project: Path) -> None:
    from prefect import tags
    from prefect.artifacts import Artifact

    from core.orchestration.flow_runs import run_tags
    from core.orchestration.flows import SUMMARY_KEY, training_pipeline
    from core.pipeline import STEP_NAMES

    with tags(*run_tags("alice@example.com", "oidc")):  # as the launcher starts a run for her
        state = training_pipeline(workers=2, actor="alice@example.com", return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["version"] == 1 and summary["promoted"] and summary["champion_after"] == 1
    assert champion(flow_project) == 1
    predictions = pd.read_csv(flow_project / "data" / "processed" / "predictions.csv", index_col=0)
    assert list(predictions.columns) == ["prdtypecode"] and len(predictions) > 0
    assert task_names(state.state_details.flow_run_id) == list(STEP_NAMES)
    artifact = Artifact.get(SUMMARY_KEY)
    assert artifact is not None and "Model v1" in str(artifact.data) and "champion" in str(artifact.data)
    live = progress_artifacts(state.state_details.flow_run_id)  # the steps that reported progress
    tasks = [a.task_run_id for a in live]
    assert live and None not in tasks and len(set(tasks)) == len(tasks)  # one per step, each its step's
    assert all(a.description and 0 <= a.data <= 100 for a in live)

    assert [m.actor for m in open_registry(Settings(root=flow_project)).history()] == ["alice@example.com"]
    [row] = flow_rows(flow_project)  # the registry move, once
    assert (row["actor"], row["via"], row["action"], row["outcome"]) == (
        "alice@example.com",
        "oidc",
        "retrain",
        "done",
    )
    assert row["target"] == "model:v1" and row["origin"] == str(state.state_details.flow_run_id)
    assert row["detail"] == "v1 registered and promoted: champion none → v1" and row["reason"]


def test_overrides_and_a_refused_model(harness: None, flow_project: Path) -> None:
    """A far worse model (tiny C) is registered, refused by the gate, and the champion stays."""
    from core.orchestration.flows import training_pipeline

    before = champion(flow_project)
    state = training_pipeline(overrides={"text.C": 0.0005}, workers=2, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert not summary["promoted"] and summary["reasons"]
    assert champion(flow_project) == before
    row = flow_rows(flow_project)[-1]  # started with no one named (the Prefect UI): the default actor
    assert (row["actor"], row["via"], row["outcome"]) == ("prefect", "flow", "done")
    assert row["detail"] == f"v{summary['version']} registered as challenger; the champion stays v{before}"


def test_a_failing_step_fails_the_run_and_keeps_the_champion(
    harness: None, flow_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.orchestration.flows import training_pipeline

    before, audited = champion(flow_project), len(flow_rows(flow_project))
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(flow_project / "no-such-folder"))
    get_settings.cache_clear()
    try:
        state = training_pipeline(workers=2, return_state=True)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()  # the next flows must see the project's own data again
    assert state.is_failed()
    assert "no-such-folder" in str(state.message) and "does not exist" in str(state.message)
    assert champion(flow_project) == before
    assert len(flow_rows(flow_project)) == audited  # ingest failed: no registry move to record


def test_an_unreachable_dask_scheduler_fails_the_run_naming_the_setting(
    harness: None, flow_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.orchestration.flows import training_pipeline
    from tests.conftest import free_port

    before = champion(flow_project)
    monkeypatch.setenv("RAKUTEN_DASK_ADDRESS", f"tcp://127.0.0.1:{free_port()}")
    monkeypatch.setenv("RAKUTEN_DASK_CONNECT_TIMEOUT_S", "1")
    get_settings.cache_clear()
    try:
        state = training_pipeline(workers=2, return_state=True)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert state.is_failed()
    assert "RAKUTEN_DASK_ADDRESS" in str(state.message) and "Cannot reach the Dask scheduler" in str(
        state.message
    )
    assert champion(flow_project) == before


def test_bad_overrides_fail_before_any_work(harness: None, flow_project: Path) -> None:
    from core.orchestration.flows import training_pipeline

    state = training_pipeline(overrides={"text.nope": 1}, workers=2, return_state=True)
    assert state.is_failed() and "text.nope" in str(state.message)


def _log(settings: Settings, confidence: float, rows: int) -> None:
    engine = open_engine(str(settings.inference_log_url))
    now = datetime.now(UTC)
    write(
        engine,
        [
            InferenceRecord(now, f"r{i}", "text", 0, 1, "x", 0, False, 2583, confidence, 1.0)
            for i in range(rows)
        ],
    )


def test_monitor_decides_from_the_inference_log(harness: None, flow_project: Path) -> None:
    from core.orchestration.flows import monitor_and_retrain

    settings = Settings(root=flow_project)
    result = monitor_and_retrain(retrain=False)
    assert result["decision"]["retrain"] is False  # no traffic yet
    assert any("predictions in the window" in r for r in result["decision"]["reasons"])

    _log(settings, confidence=0.05, rows=250)  # traffic the champion is unsure about
    result = monitor_and_retrain(retrain=False)
    decision = result["decision"]
    assert decision["retrain"] is True and result["training"] is None, result
    assert any("mean confidence fell" in r for r in decision["reasons"])
    # the same window got an Evidently report: one title, one class, no images — nothing like training
    assert result["drift_report"] and (settings.drift_dir / result["drift_report"]).is_file()
    assert decision["signals"]["drift_detected"] is True
    assert any("drift detected" in r for r in decision["reasons"])
    # the report is in the audit trail, made by the schedule (the first call made none: too few rows)
    (made,) = [r for r in flow_rows(flow_project) if r["action"] == "drift_report"]
    assert (made["actor"], made["outcome"]) == ("schedule:monitor-and-retrain", "done")
    assert made["target"].startswith("drift:") and "drift detected" in made["detail"]


def test_monitor_retrains_when_it_decides_to(harness: None, flow_project: Path) -> None:
    from core.orchestration.flows import monitor_and_retrain

    settings = Settings(root=flow_project)
    registry = open_registry(settings)
    versions_before = len(registry.versions())
    _log(settings, confidence=0.05, rows=250)
    result = monitor_and_retrain(workers=2)
    assert result["decision"]["retrain"] is True
    assert result["training"]["version"] == versions_before + 1
    row = flow_rows(flow_project)[-1]  # the schedule retrained: it is the one named
    assert (row["actor"], row["roles"], row["via"]) == (
        "schedule:monitor-and-retrain",
        "operator",
        "schedule",
    )
    assert row["target"] == f"model:v{versions_before + 1}"
    assert registry.history()[-1].actor == "schedule:monitor-and-retrain"


CLUSTER = "Dask tasks (2 workers)"


def test_a_step_s_progress_is_one_artifact_updated_as_it_goes(harness_settings: Settings) -> None:
    from prefect import flow, task
    from prefect.context import TaskRunContext

    from core.orchestration.flow_runs import StepProgress, step_progress
    from core.orchestration.step_progress import LiveProgress

    now = [0.0]
    read: list[StepProgress | None] = []

    @task
    def encode() -> tuple[object, str]:
        context = TaskRunContext.get()
        assert context is not None and context.task_run is not None
        run_id = context.task_run.flow_run_id
        live = LiveProgress(clock=lambda: now[0])

        def report(stage: str, done: int, total: int, at: float) -> None:
            now[0] = at
            live(stage, done, total)
            read.append(step_progress(harness_settings, run_id))

        # the first report from another thread (a callback of a pool): Prefect's run context is per thread
        first = threading.Thread(target=report, args=("images (train)", 0, 100, 0.0))
        first.start()
        first.join()
        report("images (train)", 50, 100, 0.5)  # within the second: not published
        report(CLUSTER, 1, 4, 1.2)
        report(CLUSTER, 4, 4, 1.3)  # a stage's last report: published at once
        return live.artifact_id, str(context.task_run.id)

    @flow
    def stepping() -> tuple[object, str]:
        return encode()

    state = stepping(return_state=True)
    assert state.is_completed(), state.message
    artifact_id, task_run_id = state.result()
    assert read == [
        StepProgress(0.0, ("images (train): 0 / 100",), task_run_id),
        StepProgress(0.0, ("images (train): 0 / 100",), task_run_id),
        StepProgress(25.0, (f"{CLUSTER}: 1 / 4", "images (train): 50 / 100"), task_run_id),
        StepProgress(100.0, (f"{CLUSTER}: 4 / 4", "images (train): 50 / 100"), task_run_id),
    ]
    assert [a.id for a in progress_artifacts(state.state_details.flow_run_id)] == [artifact_id]


def test_a_prefect_api_error_does_not_fail_the_step(
    harness_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect import flow, task

    from core.orchestration.flow_runs import prefect_client
    from core.orchestration.step_progress import LiveProgress

    now = [0.0]

    @task
    def score() -> str:
        live = LiveProgress(clock=lambda: now[0], pause_s=30)
        live("batch scoring", 1, 3)
        assert live.artifact_id is not None
        with prefect_client(harness_settings) as client:  # gone: its next update is answered 404
            client.delete_artifact(live.artifact_id)
        live("batch scoring", 3, 3)
        now[0] = 10.0
        live("batch scoring", 3, 3)  # paused after the error: the API is not asked again yet
        return "scored"

    @flow
    def scoring() -> str:
        return score()

    with caplog.at_level(logging.DEBUG, logger="core.orchestration.step_progress"):
        state = scoring(return_state=True)
    assert state.is_completed(), state.message
    assert state.result() == "scored"
    failures = [r for r in caplog.records if "step progress not published" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.DEBUG
    assert progress_artifacts(state.state_details.flow_run_id) == []
