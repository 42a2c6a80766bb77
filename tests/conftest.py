"""Shared fixtures: a small demo dataset written once per session, and isolated settings per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

import pytest

from core.config import get_settings
from core.data.demo.generator import DemoSpec, write_demo

DEMO_ROWS = 400


# Math libraries' thread pools, one thread each when test processes run side by side
THREAD_POOLS: Final = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_MAX_THREADS")


def pytest_configure(config: pytest.Config) -> None:
    """Prefect's client files (profiles) in a private folder, no telemetry. Under pytest-xdist (set
    here in the controller, before the test processes start, so they and every process they start
    inherit it), one thread per math library's pool: each test process already has a core, and
    OpenMP / OpenBLAS threads that spin waiting for a core slow a busy machine several times over."""
    import os
    import tempfile

    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rakuten-test-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if (getattr(config.option, "numprocesses", None) or 0) > 1:
        for variable in THREAD_POOLS:
            os.environ.setdefault(variable, "1")


# Test modules that share one session-wide service, kept on one test process (pytest-xdist)
SHARED_SESSION: Final = {
    "tests/e2e/test_console.py": "e2e",
    "tests/e2e/test_operations.py": "e2e",
    "tests/e2e/test_secrets_stay_out.py": "e2e",
    "tests/e2e/test_traffic_markup.py": "e2e",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow modules (`slow` mark) first, the real-browser ones first of all: test processes take
    modules in this order, and a long module taken last would leave the other processes idle."""

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    rank: dict[str, int] = {}
    for item in items:
        here = 0 if module(item).startswith("tests/e2e/") else 1 if item.get_closest_marker("slow") else 2
        rank[module(item)] = min(here, rank.get(module(item), here))
    items.sort(key=lambda item: rank[module(item)])  # stable: each module's tests keep their order


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` (`-n auto --dist loadfile --no-loadscope-reorder`): each test module runs whole on
    one process (its module-scoped services start once, its tests keep their order), modules are
    handed out in the order `pytest_collection_modifyitems` set, and the modules that share a session
    service (the real-browser stack) run on the same process."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_SESSION.get(module, module)

    return ModuleScheduling(config, log)


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
    """A project with 1,500 demo products (images included), settings pointed at it. Nothing trained
    yet, no Prefect."""
    root = tmp_path / "project"
    write_demo(root / "data" / "raw", DemoSpec(rows=TRAINED_ROWS, seed=11), workers=2)
    clean_env(monkeypatch, root)
    monkeypatch.chdir(root)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    yield root
    get_settings.cache_clear()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """What was skipped and why, in one block at the very end (with the command that fixes it)."""
    from collections import Counter

    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: Counter[str] = Counter()
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[reason.removeprefix("Skipped: ").split("\n")[0]] += 1
    terminalreporter.section(f"{len(skipped)} test(s) skipped — not the whole suite", sep="=", yellow=True)
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"  {count:>3} × {reason}")
    fixes = "System tools: `make system-deps`; extras: `make install-vision install-embeddings`."
    terminalreporter.write_line(f"  {fixes}")


def require_tool(name: str, install: str) -> str:
    """The path of a system tool a test needs. Missing: the test fails under `CI=true` (CI installs
    it) and is skipped elsewhere, with how to install it."""
    found = shutil.which(name)
    if found is None:
        _missing(f"{name} not installed — `make system-deps` installs it ({install})")
    return found


def require_extra(name: str, installed: bool, install: str) -> None:
    """An optional extra a test needs (`vision`, `embeddings`): like `require_tool`, CI installs it, so
    a missing one fails there and skips elsewhere."""
    if not installed:
        _missing(f"the {name} extra is not installed ({install})")


def _missing(message: str) -> NoReturn:
    import os

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def clean_env(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    monkeypatch.setenv("RAKUTEN_ROOT", str(root))
    for var in (
        "RAKUTEN_DATA_DIR",
        "RAKUTEN_PREFECT_PORT",
        "RAKUTEN_API_PORT",
        "RAKUTEN_CONSOLE_PORT",
        "RAKUTEN_PREFECT_API_URL",
        "MLFLOW_TRACKING_URI",
        "RAKUTEN_MLFLOW_TRACKING_URI",
        "PREFECT_API_URL",
        "RAKUTEN_API_URL",
        "RAKUTEN_ENVIRONMENT",
        "RAKUTEN_API_ADMIN_TOKEN",
        "RAKUTEN_CONSOLE_ADMIN_TOKEN",
        "RAKUTEN_TOKEN",
        "RAKUTEN_AUDIT_URL",
        "RAKUTEN_SERVICE_TOKENS_FILE",
        "RAKUTEN_OIDC_SERVER_METADATA_URL",
        "RAKUTEN_OIDC_CLIENT_ID",
        "RAKUTEN_OIDC_CLIENT_SECRET",
        "RAKUTEN_OIDC_COOKIE_SECRET",
        "RAKUTEN_OIDC_REDIRECT_URI",
        "RAKUTEN_API_PREDICT_REQUIRES_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()


def build_trained_project(root: Path, *, rows: int = TRAINED_ROWS, seed: int = 11) -> Path:
    """A project root with demo data (images included) and one full pipeline run: a registered
    champion v1 in a private SQLite MLflow store, predictions written."""
    from core.config import Settings
    from core.params import Params
    from core.pipeline import run_pipeline

    write_demo(root / "data" / "raw", DemoSpec(rows=rows, seed=seed), workers=2)
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


# --- the local stack (`python -m core up`) -----------------------------------------------------------
@dataclass(frozen=True)
class LocalStack:
    root: Path
    env: dict[str, str]  # what points a process at it: RAKUTEN_ROOT and the stack's ports

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.env['RAKUTEN_CONSOLE_PORT']}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['RAKUTEN_API_PORT']}"

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`python -m core ARGS` as a user runs it against this stack (wide terminal, no wrapping)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
        env |= self.env | {"COLUMNS": "200"}
        return subprocess.run(
            [sys.executable, "-m", "core", *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def local_stack(root: Path, env: dict[str, str] | None = None) -> Iterator[LocalStack]:
    """`python -m core up --detach --no-prepare` on `root` with free ports (and `env`: more settings);
    `python -m core down` after."""
    ports = {f"RAKUTEN_{name}_PORT": str(free_port()) for name in ("PREFECT", "API", "CONSOLE")}
    stack = LocalStack(root, {"RAKUTEN_ROOT": str(root)} | ports | (env or {}))
    started = stack.cli("up", "--detach", "--no-prepare", timeout=400)
    try:
        assert started.returncode == 0, f"the local stack did not start:\n{started.stderr[-4000:]}"
        yield stack
    finally:
        stopped = stack.cli("down", timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-2000:]


@pytest.fixture(scope="module")
def stack_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A local stack (Prefect server + worker, API, console) on a project with 1,500 demo products,
    nothing trained, for one test module."""
    root = tmp_path_factory.mktemp("stack") / "project"
    write_demo(root / "data" / "raw", DemoSpec(rows=TRAINED_ROWS, seed=11), workers=2)
    with local_stack(root) as stack:
        yield stack


@pytest.fixture
def on_stack(stack_project: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """This process's settings pointed at the module's local stack."""
    clean_env(monkeypatch, stack_project.root)
    for key, value in stack_project.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(stack_project.root)
    get_settings.cache_clear()
    yield stack_project
    get_settings.cache_clear()
