"""Shared fixtures: a small demo dataset written once per session, and isolated settings per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import get_settings
from core.data.demo.generator import DemoSpec, write_demo

DEMO_ROWS = 400


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo dataset with images, as downloaded (official names). Read-only: copy it to modify."""
    path = tmp_path_factory.mktemp("demo") / "raw"
    write_demo(path, DemoSpec(rows=DEMO_ROWS, seed=7), workers=2)
    return path


@pytest.fixture
def demo_dir(demo_source: Path, tmp_path: Path) -> Path:
    """A private copy of the demo dataset that a test may break."""
    target = tmp_path / "raw"
    shutil.copytree(demo_source, target)
    return target


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project root: Settings point every path inside it; no `.env` is read."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("RAKUTEN_ROOT", str(root))
    for var in (
        "RAKUTEN_DATA_DIR",
        "MLFLOW_TRACKING_URI",
        "RAKUTEN_MLFLOW_TRACKING_URI",
        "PREFECT_API_URL",
        "RAKUTEN_API_URL",
        "RAKUTEN_ENVIRONMENT",
        "RAKUTEN_API_ADMIN_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()
