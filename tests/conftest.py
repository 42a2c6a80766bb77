"""Shared fixtures: a small demo dataset written once per session, and isolated settings per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.config import get_settings
from core.data.demo.generator import DemoSpec, write_demo

DEMO_ROWS = 400


def pytest_configure(config: pytest.Config) -> None:
    """One embedded Prefect store for the whole session: a process's embedded Prefect API is started
    once, on the store of the moment, so tests in one process must not switch stores between them."""
    import os
    import tempfile

    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rakuten-test-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(autouse=True)
def _mlflow_env_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI, which Settings read: without this,
    one test's store would leak into every later test's settings. The console's fail-fast HTTP
    settings (`core.ui.data.configure_console`, run by every AppTest) stay with the test too."""
    http = (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
    )
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", *http):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches() -> None:
    """Console tests start with empty Streamlit caches: they outlive one AppTest (and would keep an
    earlier test's settings)."""
    import sys

    if "streamlit" in sys.modules:
        import streamlit as st

        st.cache_data.clear()
        st.cache_resource.clear()


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
    clean_env(monkeypatch, root)
    yield root
    get_settings.cache_clear()


TRAINED_ROWS = 1500


@pytest.fixture
def small_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project with 1,500 demo products (images included), settings pointed at it, embedded Prefect
    (the session's store, see `pytest_configure`). Nothing trained yet."""
    root = tmp_path / "project"
    write_demo(root / "data" / "raw", DemoSpec(rows=TRAINED_ROWS, seed=11), workers=2)
    clean_env(monkeypatch, root)
    monkeypatch.chdir(root)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    yield root
    get_settings.cache_clear()


def require_tool(name: str, install: str) -> str:
    """The path of a system tool a test needs. Missing: the test fails under `CI=true` (CI installs
    it) and is skipped elsewhere, with how to install it."""
    found = shutil.which(name)
    if found is None:
        _missing(f"{name} not installed ({install})")
    return found


def require_extra(name: str, installed: bool, install: str) -> None:
    """An optional extra a test needs (`vision`, `embeddings`): like `require_tool`, CI installs it, so
    a missing one fails there and skips elsewhere."""
    if not installed:
        _missing(f"the {name} extra is not installed ({install})")


def _missing(message: str) -> None:
    import os

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def clean_env(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
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


@contextmanager
def own_mlflow_env() -> Iterator[None]:
    """Session fixtures build projects before any test's `_mlflow_env_restored` runs: without this, a
    tracking URI exported by an earlier build (`mlflow.set_tracking_uri`) would send this build's runs
    to that project's store. Cleared before, restored after."""
    import os

    saved = {var: os.environ.pop(var, None) for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    try:
        yield
    finally:
        for var, value in saved.items():
            os.environ.pop(var, None)
            if value is not None:
                os.environ[var] = value


def build_trained_project(root: Path, *, rows: int = TRAINED_ROWS, seed: int = 11) -> Path:
    """A project root with demo data (images included) and one full pipeline run: a registered
    champion v1 in a private SQLite MLflow store, predictions written."""
    from core.config import Settings
    from core.params import Params
    from core.pipeline import run_pipeline

    write_demo(root / "data" / "raw", DemoSpec(rows=rows, seed=seed), workers=2)
    with own_mlflow_env():
        run_pipeline(Settings(root=root), Params(), workers=2)
    return root


def build_two_run_project(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A trained project with a second run that differs only in `text.C`, far too small (v1 champion,
    v2 refused)."""
    from core.config import Settings
    from core.params import Params, TextParams
    from core.pipeline import run_pipeline

    root = tmp_path_factory.mktemp(name) / "project"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        clean_env(mp, root)
        build_trained_project(root)
        with own_mlflow_env():
            run_pipeline(Settings(root=root), Params(text=TextParams(C=0.001)), workers=2)
    get_settings.cache_clear()
    return root


@pytest.fixture(scope="session")
def trained_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session-wide trained project. Read-only: tests that train, promote or roll back build their
    own with `build_trained_project` (its MLflow store records absolute artifact paths: no copies)."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("trained") / "project"
    root.mkdir()
    try:
        clean_env(mp, root)
        build_trained_project(root)
    finally:
        mp.undo()
        get_settings.cache_clear()
    return root


@pytest.fixture
def trained_project(trained_source: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings pointed at the session's trained project (do not change its registry)."""
    monkeypatch.chdir(trained_source)
    clean_env(monkeypatch, trained_source)
    yield trained_source
    get_settings.cache_clear()
