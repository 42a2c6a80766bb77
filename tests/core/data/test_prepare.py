"""Data state and first-use preparation: what the console and `python -m core prepare` decide."""

import os
import shutil
from pathlib import Path

import pytest

from core.config import Settings
from core.data.ingest import ingest
from core.data.prepare import data_state, prepare


def test_empty_default_folder_then_ready(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAKUTEN_DEMO_ROWS", "60")
    monkeypatch.setenv("RAKUTEN_DEMO_IMAGES", "false")
    settings = Settings()
    assert data_state(settings).name == "empty_default"
    outcome = prepare(settings)
    assert (outcome.generated, outcome.ingested) == (True, True)
    assert data_state(settings).name == "ready"
    again = prepare(settings)
    assert (again.generated, again.ingested) == (False, False)
    assert prepare(settings, force=True).ingested


def test_configured_folder_is_never_filled(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(project / "download"))
    state = data_state(Settings())
    assert state.name == "missing"
    assert "does not exist" in state.message


def test_changed_files_make_the_ingest_stale(project: Path, demo_source: Path, monkeypatch) -> None:
    raw = project / "download"
    shutil.copytree(demo_source, raw)
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(raw))
    settings = Settings()
    assert data_state(settings).name == "not_ingested"
    ingest(raw, settings.interim_dir, image_check="none")
    assert data_state(settings).name == "ready"

    x = raw / "X_train_update.csv"
    os.utime(x, ns=(x.stat().st_atime_ns, x.stat().st_mtime_ns + 10**9))  # touched, same content
    assert data_state(settings).name == "ready"
    x.write_text(x.read_text(encoding="utf-8").replace("\n0,", "\n0,Nouveau ", 1), encoding="utf-8")
    assert data_state(settings).name == "stale"
    next((raw / "images" / "image_train").iterdir()).unlink()
    assert prepare(settings).ingested
    assert data_state(settings).name == "ready"


def test_ingest_from_another_folder_is_reported(project: Path, demo_source: Path, monkeypatch) -> None:
    settings_a = Settings()
    ingest(demo_source, settings_a.interim_dir, image_check="none")
    other = project / "other"
    shutil.copytree(demo_source, other)
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(other))
    state = data_state(Settings())
    assert state.name == "stale"
    assert str(demo_source) in state.message
