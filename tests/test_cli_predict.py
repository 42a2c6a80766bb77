"""`python -m core predict --input --output`: a catalogue scored with the champion, what it found
said in the terminal; both options or neither; an unreachable cluster named by its setting."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from core.cli import app
from core.config import get_settings
from tests.conftest import free_port

runner = CliRunner()


def test_a_catalogue_is_scored_with_the_champion(trained_project: Path, tmp_path: Path) -> None:
    source = next((trained_project / "data" / "raw").glob("X_test*.csv"))
    output = tmp_path / "answers.csv"
    images = trained_project / "data" / "raw" / "images" / "image_test"
    result = runner.invoke(app, ["predict", "-i", str(source), "-o", str(output), "--images", str(images)])
    assert result.exit_code == 0, result.output
    rows = len(pd.read_csv(source))
    assert f"Scored {rows:,} products with v1" in " ".join(result.output.split())
    assert "this process" in result.output and "report:" in result.output
    assert len(pd.read_csv(output)) == rows


def test_input_and_output_go_together(trained_project: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", "--input", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "--input and --output go together" in result.output


def test_an_unreachable_cluster_is_named_by_its_setting(
    trained_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("RAKUTEN_DASK_ADDRESS", address)
    monkeypatch.setenv("RAKUTEN_DASK_CONNECT_TIMEOUT_S", "1")
    get_settings.cache_clear()
    source = next((trained_project / "data" / "raw").glob("X_test*.csv"))
    output = tmp_path / "answers.parquet"
    result = runner.invoke(app, ["predict", "-i", str(source), "-o", str(output)])
    assert result.exit_code == 2, result.output
    assert "RAKUTEN_DASK_ADDRESS" in result.output and address in result.output
    assert not output.exists()
    get_settings.cache_clear()
