"""Pipeline runs page in a new browser session, against a fake Prefect read side (tests/app/prefect_fake.py;
the real stack: tests/app/test_pipeline_runs_page.py): "Current run" shows the newest run and its outcome
when this session started none, and run states are drawn with Material icons and coloured dots, never
emoji (empty boxes where no emoji font is installed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.prefect_fake import FakePrefect, run

HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")
EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\u23e9-\u23fa\u2b00-\u2bff]")


def _open() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("../pages/pipeline_runs.py").run()
    assert not at.exception, at.exception
    return at


def _shown(at: AppTest) -> str:
    parts = [*at.markdown, *at.info, *at.warning, *at.error, *at.success, *at.caption]
    return "\n".join(str(p.value) for p in parts)


@pytest.fixture
def three_completed(project: Path, monkeypatch: pytest.MonkeyPatch) -> FakePrefect:
    fake = FakePrefect([run(f"run-{i}", "COMPLETED", minutes_ago=10 * i) for i in (1, 2, 3)])
    fake.summaries[fake.runs[0].id] = "## Training outcome\nModel v3 promoted to champion."
    return fake.install(monkeypatch)


def test_a_new_session_shows_the_last_run_and_its_outcome(three_completed: FakePrefect) -> None:
    at = _open()
    text = _shown(at)
    assert "No run yet" not in text and "No training run yet" not in text
    assert "**run-1**" in text and "COMPLETED" in text  # the newest of the three, as History lists it
    assert "Model v3 promoted to champion" in text  # its outcome
    assert at.button(key="live_rerun")
    history = at.dataframe[0].value
    assert history["run"].tolist() == ["run-1", "run-2", "run-3"]


def test_a_running_run_is_followed_before_older_finished_ones(
    three_completed: FakePrefect,
) -> None:
    three_completed.runs.insert(0, run("busy-bee", "RUNNING", minutes_ago=1, running_step="train"))
    at = _open()
    text = _shown(at)
    assert "**busy-bee**" in text and "RUNNING" in text
    assert at.button(key="live_cancel")


def test_without_any_run_it_says_how_to_start_one(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FakePrefect().install(monkeypatch)
    at = _open()
    assert any("No run yet" in i.value for i in at.info)


def test_run_states_are_drawn_without_emoji(three_completed: FakePrefect) -> None:
    three_completed.runs.insert(0, run("lost-run", "FAILED", minutes_ago=1))
    at = _open()
    text = _shown(at)
    assert not EMOJI.search(text), EMOJI.findall(text)
    assert ":material/cancel:" in text  # the live run's badge: a Material icon
    history = at.dataframe[0].value
    assert history["state"].tolist() == ["● FAILED"] + ["● COMPLETED"] * 3
    assert not any(EMOJI.search(cell) for cell in history["state"])


def test_a_click_while_a_run_is_in_progress_names_the_run(
    three_completed: FakePrefect,
) -> None:
    at = _open()
    at.button(key="retrain").click().run()
    assert not at.exception, at.exception
    started = three_completed.runs[0]
    assert any(f"Started training run {started.name}" in s.value for s in at.success)
    at.button(key="retrain").click().run()  # a second click while it runs
    warning = " ".join(w.value for w in at.warning)
    assert f"Training run {started.name} is already in progress" in warning
    assert started.id not in warning and started.id not in " ".join(s.value for s in at.success)
