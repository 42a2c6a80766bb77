"""Pipeline runs page through AppTest on the local stack (`python -m core up`): Retrain starts a run
on the stack's worker that appears and progresses to Completed with its outcome; a second click while
it runs is refused, not started; a failing run shows its error and changes no model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import LocalStack

pytestmark = pytest.mark.slow
HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")


def _open() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=120).run()
    at.switch_page("../pages/pipeline_runs.py").run()
    assert not at.exception, at.exception
    return at


def test_retrain_runs_to_completion_and_refuses_a_second_start(on_stack: LocalStack) -> None:
    at = _open()
    assert any("Local stack" in c.value for c in at.caption)
    started = time.monotonic()
    at.button(key="retrain").click().run()
    assert not at.exception, at.exception
    assert any("Started training run" in s.value for s in at.success), [e.value for e in at.error]
    assert time.monotonic() - started < 10  # the page returns with the run id, the run goes on

    at.button(key="retrain").click().run()  # the double click
    assert any("already in progress" in w.value for w in at.warning)

    deadline = time.monotonic() + 300
    while True:
        at.run()
        assert not at.exception, at.exception
        text = " ".join(m.value for m in at.markdown)
        if "COMPLETED" in text:
            break
        assert "FAILED" not in text and "CRASHED" not in text, text
        assert time.monotonic() < deadline, "the run did not complete"
        time.sleep(2)
    assert "Model v1" in text and "champion" in text  # the outcome summary
    assert at.button(key="live_rerun")  # re-run with the same parameters
    assert at.get("progress")
    history = at.dataframe[0].value  # newest first (the session's store may hold other tests' runs)
    assert "COMPLETED" in history["state"].iloc[0] and history["flow"].iloc[0] == "training-pipeline"


def test_a_failing_run_shows_its_error_and_changes_no_model(on_stack: LocalStack) -> None:
    """The training's first step fails on a malformed download: the run ends FAILED, the page shows
    the step's error, and no model was registered or promoted."""
    from core.config import Settings
    from core.tracking.registry import open_registry

    settings = Settings()
    registry = open_registry(settings)
    champion, versions = registry.champion(), registry.versions()
    x_train = on_stack.root / "data" / "raw" / "X_train_update.csv"
    original = x_train.read_bytes()
    x_train.write_text("id;designation\n0;broken\n", encoding="utf-8")  # `;`: not the challenge layout
    try:
        _fail_a_run(registry, champion, versions)
    finally:
        x_train.write_bytes(original)


def _fail_a_run(registry: Any, champion: Any, versions: Any) -> None:
    at = _open()
    at.button(key="retrain").click().run()
    assert any("Started training run" in s.value for s in at.success), [e.value for e in at.error]
    deadline = time.monotonic() + 180
    while "FAILED" not in (text := " ".join(m.value for m in at.markdown)):
        assert "COMPLETED" not in text, text
        assert time.monotonic() < deadline, "the run did not fail"
        time.sleep(1)
        at.run()
        assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "delimiter" in errors.lower() and "X_train_update.csv" in errors, errors
    assert registry.champion() == champion and registry.versions() == versions  # nothing changed
    assert at.button(key="live_rerun")  # it can be run again once the data is fixed
