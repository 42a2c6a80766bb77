"""Experiments page through AppTest: the empty state names the command to run, the runs table lists
the tracked runs, and picking two runs compares metrics, parameters, per-class F1 and confusions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from tests.conftest import build_two_run_project, clean_env

HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")


@pytest.fixture(scope="module")
def two_runs_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with two runs that differ only in `text.C` (read-only)."""
    return build_two_run_project(tmp_path_factory, "experiments")


@pytest.fixture
def two_runs(two_runs_source: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(two_runs_source)
    clean_env(monkeypatch, two_runs_source)
    yield two_runs_source
    get_settings.cache_clear()


def _open() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("../pages/experiments.py").run()
    assert not at.exception, at.exception
    return at


def _frame_with(at: AppTest, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_fresh_project_says_which_command_records_runs(project: Path) -> None:
    at = _open()
    assert any("No training run recorded yet" in i.value for i in at.info)
    assert any("python -m core pipeline" in c.value for c in at.code)
    assert not (project / "mlflow.db").exists()  # looking did not create a store


def test_runs_table_lists_the_trained_run(trained_project: Path) -> None:
    at = _open()
    runs = at.dataframe(key="runs_table").value
    assert len(runs) == 1
    assert runs.loc[0, "version"] == 1 and runs.loc[0, "aliases"] == "champion"
    assert at.multiselect(key="runs").options[0].startswith("v1 · train-")
    assert any("Pick two or more runs" in i.value for i in at.info)


def test_comparing_two_runs_renders_every_comparison(two_runs: Path) -> None:
    at = _open()
    runs = at.dataframe(key="runs_table").value
    assert len(runs) == 2
    at.multiselect(key="runs").set_value(runs["run_id"].tolist()).run()
    assert not at.exception, at.exception

    metrics = _frame_with(at, runs.loc[0, "run"] + " · " + runs.loc[0, "run_id"][:6])
    assert {"weighted_f1", "macro_f1", "log_loss"} <= set(metrics.index)
    assert metrics.loc["weighted_f1"].tolist() == pytest.approx(runs["weighted_f1"].tolist())

    differing = next(d.value for d in at.dataframe if d.value.index.name == "parameter")
    assert "text.C" in differing.index  # one value given vs candidates searched by CV
    assert differing.loc["text.C"].tolist() == ["0.001", "[0.25, 0.5, 1.0]"]

    charts = {c.key for c in at.get("plotly_chart")}
    assert {"per_class_f1", "confusion_a", "confusion_b", "confusion_diff", "calibration"} <= charts


def _parameters_tab(tags_a: dict[str, str], tags_b: dict[str, str]) -> AppTest:
    """The Parameters tab alone, for two runs with the same parameters and the given `data.*` tags."""

    def tab(tags_a: dict[str, str], tags_b: dict[str, str]) -> None:
        from core.tracking.training_runs import RunDetail
        from core.ui.experiments_view import parameter_differences

        params = {"text.C": "0.5", "seed": "42"}
        parameter_differences(
            [RunDetail("a-id-000", "a", params, {}, tags_a), RunDetail("b-id-000", "b", params, {}, tags_b)]
        )

    at = AppTest.from_function(tab, args=(tags_a, tags_b), default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def test_same_parameters_on_other_data_are_not_called_the_same() -> None:
    at = _parameters_tab(
        {"data.fingerprint": "d1", "data.corrections": "0"},
        {"data.fingerprint": "d2", "data.corrections": "2", "data.corrections_sha256": "feedbeef" * 8},
    )
    assert not at.success  # not "the same parameters"
    said = at.info[0].value
    assert said.startswith("Same parameters, but not the same training data")
    assert "data version, reviewed labels applied and corrections file differ" in said
    data = next(d.value for d in at.dataframe if d.value.index.name == "data")
    assert data.loc["data version"].tolist() == ["d1", "d2"]


def test_same_parameters_on_the_same_data() -> None:
    at = _parameters_tab({"data.fingerprint": "d1"}, {"data.fingerprint": "d1", "data.corrections": "0"})
    assert at.success[0].value == "These runs used the same parameters on the same data."
