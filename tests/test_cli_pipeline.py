"""The pipeline commands of the command line: a first run on a fresh project, the registry listing, and
core errors (no champion, bad params.yaml) as a message + exit code 2."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from core.cli import app
from core.config import Settings
from core.identity.roles import local_user
from core.storage.audit import AuditTrail
from core.tracking.registry import open_registry

runner = CliRunner()


def _text(output: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(output.split())


def test_pipeline_on_a_fresh_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAKUTEN_DEMO_ROWS", "1200")
    result = runner.invoke(app, ["pipeline", "--workers", "2"])
    assert result.exit_code == 0, result.output
    out = _text(result.output)
    assert "Weighted F1" in out and "Registered version 1 → champion" in out
    me = local_user().name  # local development, no RAKUTEN_TOKEN: the person at this machine
    assert [m.actor for m in open_registry(Settings()).history()] == [me]
    [row] = AuditTrail.open(str(Settings().audit_url)).read().to_dict("records")
    assert (row["actor"], row["action"], row["target"], row["outcome"]) == (me, "retrain", "model:v1", "done")
    assert str(row["detail"]).startswith("v1 registered and promoted: champion none → v1")
    predictions = pd.read_csv(project / "data" / "processed" / "predictions.csv", index_col=0)
    x_test = pd.read_csv(project / "data" / "raw" / "X_test_update.csv", index_col=0, usecols=[0])
    assert predictions.index.equals(x_test.index)
    # Now there is a champion, predict alone works too.
    again = runner.invoke(app, ["predict", "--workers", "1"])
    assert again.exit_code == 0, again.output
    assert "with champion v1" in _text(again.output)


def test_predict_without_champion_exits_2_with_what_to_do(project: Path) -> None:
    result = runner.invoke(app, ["predict"])
    assert result.exit_code == 2
    out = _text(result.output)
    assert "Error: No champion model yet: run `python -m core pipeline`" in out
    assert "Traceback" not in result.output


def test_models_lists_versions_and_history(trained_project: Path) -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    out = _text(result.output)
    assert "rakuten-product-classifier" in out
    assert "champion" in out
    assert "— → v1" in out  # the first promotion (no previous champion), recorded in the history
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in result.output.splitlines()
        if line.startswith("│")
    ]
    metrics = json.loads((trained_project / "reports" / "evaluation" / "metrics.json").read_text())
    assert [row[:3] for row in rows] == [["1", "champion", f"{metrics['weighted_f1']:.4f}"]]


@pytest.mark.parametrize("command", ["pipeline", "features", "train", "evaluate"])
def test_invalid_params_exit_2_naming_the_key(project: Path, command: str) -> None:
    (project / "params.yaml").write_text("text:\n  C: -1\n", encoding="utf-8")
    result = runner.invoke(app, [command])
    assert result.exit_code == 2
    out = _text(result.output)
    assert "Invalid value in" in out and "text.C:" in out
    assert not (project / "data").exists()  # refused before any work
