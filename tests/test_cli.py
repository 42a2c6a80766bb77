"""The command line: every command listed, paths from Settings, core errors → message + exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app

runner = CliRunner()


def test_module_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True, check=True)
    for command in ("demo-data", "ingest", "prepare", "info"):
        assert command in out.stdout


def test_demo_data_then_ingest_with_default_paths(project: Path) -> None:
    result = runner.invoke(app, ["demo-data", "--rows", "60", "--no-images", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert (project / "data" / "raw" / "X_train_update.csv").exists()
    result = runner.invoke(app, ["ingest", "--image-check", "exists"])
    assert result.exit_code == 0, result.output
    assert "missing_image" in result.output  # text-only demo: every image is reported missing
    assert (project / "data" / "interim" / "train.parquet").exists()


def test_paths_can_be_overridden(project: Path, tmp_path: Path) -> None:
    raw, out = tmp_path / "elsewhere", tmp_path / "tables"
    assert runner.invoke(app, ["demo-data", "--rows", "40", "--no-images", "--out", str(raw)]).exit_code == 0
    result = runner.invoke(
        app, ["ingest", "--data-dir", str(raw), "--out", str(out), "--image-check", "none"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "validation_report.md").exists()
    # nothing of the data in the project: only the audit trail (the inference log's database) is there
    assert {p.name for p in (project / "data").iterdir()} <= {
        "inference.db",
        "inference.db-wal",
        "inference.db-shm",
    }


def test_fatal_problem_exits_2_with_the_message(project: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "X_train.csv").write_text("designation;description;productid;imageid\n")
    (raw / "Y_train.csv").write_text(",prdtypecode\n")
    result = runner.invoke(app, ["ingest", "--data-dir", str(raw)])
    assert result.exit_code == 2
    assert "semicolons" in result.output


def test_strict_exits_1_when_rows_are_quarantined(project: Path, demo_dir: Path) -> None:
    x = demo_dir / "X_train_update.csv"
    lines = x.read_text(encoding="utf-8").split("\n")
    lines.insert(2, "777777,too,many,fields,1,2,3")
    x.write_text("\n".join(lines), encoding="utf-8")
    args = ["ingest", "--data-dir", str(demo_dir), "--image-check", "none"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "--strict"]).exit_code == 1


def test_prepare_generates_once_then_is_up_to_date(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAKUTEN_DEMO_ROWS", "80")
    first = runner.invoke(app, ["prepare"])
    assert first.exit_code == 0, first.output
    assert "generated demo data, ingested" in first.output
    second = runner.invoke(app, ["prepare"])
    assert "up to date" in second.output


def test_prepare_never_fills_a_configured_data_dir(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = project / "real-data"
    target.mkdir()
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(target))
    result = runner.invoke(app, ["prepare"])
    assert result.exit_code == 2
    assert "X_train_update.csv" in result.output
    assert list(target.iterdir()) == []


def test_info_masks_secrets(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAKUTEN_API_ADMIN_TOKEN", "very-secret-value")
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0
    assert "very-secret-value" not in result.output
    assert "set (hidden)" in result.output
