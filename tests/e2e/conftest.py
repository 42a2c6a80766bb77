"""Real-browser fixtures: a demo project with two registered versions, the prediction API
(`python -m core serve`) and the console (`streamlit run app/Home.py`, predicting through that API)
started on it once per session, and Debian's Chromium driven by Playwright (no browser download).
Screenshots go to `$RAKUTEN_E2E_SCREENSHOTS` (default: a temporary folder, printed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import build_two_run_project, require_tool
from tests.integration.conftest import REPO, _free_port, _stop, _tail
from tests.integration.test_api_server import Server, start_server, stop_server

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Console:
    url: str
    root: Path  # its project
    api_url: str  # the prediction API it sends predictions to


@pytest.fixture(scope="session")
def e2e_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo data with images; v1 champion, v2 registered and refused by the gate (promotable by hand)."""
    return build_two_run_project(tmp_path_factory, "e2e")


@pytest.fixture(scope="session")
def api(e2e_project: Path) -> Iterator[Server]:
    """`python -m core serve` on the project (inference log: the project's), following the champion
    alias every second; stopped at the end of the session."""
    server = start_server(e2e_project, e2e_project / "api.log", alias_check_s=1.0,
                          env={"PREFECT_HOME": str(e2e_project / ".prefect")})  # fmt: skip
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def console(e2e_project: Path, api: Server) -> Iterator[Console]:
    """The console on the project, predicting through `api`; embedded Prefect runs recorded in the
    project's store (`.prefect/`); drift reports from 100 predictions on. Yields its URL."""
    root = e2e_project
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env |= {
        "RAKUTEN_ROOT": str(root),
        "RAKUTEN_API_URL": api.url,
        "RAKUTEN_MONITOR_MIN_ROWS": "100",
        "PREFECT_HOME": str(root / ".prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    log = root / "console.log"
    command = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "Home.py"), "--server.headless=true",
        "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, _tail(log)
            assert time.monotonic() < deadline, _tail(log)
            time.sleep(0.3)
        yield Console(url, root, api.url)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread while open,
    which would turn later tests' Prefect calls asynchronous."""
    found = (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome"))
    chromium = next((path for path in found if path), None) or require_tool(
        "chromium", "Debian: apt-get install chromium"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        flags = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=flags)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("RAKUTEN_E2E_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"e2e screenshots: {folder}")
    return folder


def open_page(page: Any, console: Console, path: str, title: str) -> None:
    """Go to a page of the console and wait until its title is drawn and the network is quiet."""
    page.goto(f"{console.url}/{path}")
    page.get_by_role("heading", name=title, exact=True).first.wait_for()
    page.wait_for_load_state("networkidle")


def exceptions(page: Any) -> list[str]:
    """The tracebacks the page shows (Streamlit draws an uncaught exception in the page)."""
    return list(page.locator('[data-testid="stException"]').all_inner_texts())


def snapshot(page: Any, path: Path) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main block, so a full-page shot
    would hold only the window's height; the window is stretched to the content for the shot."""
    size = page.viewport_size
    main = page.locator('[data-testid="stMain"]')
    height = main.first.evaluate("e => e.scrollHeight") if main.count() else 0
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 12_000))})
    page.wait_for_timeout(500)  # let charts and frames lay out at the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def choose(page: Any, box: Any, option: Any) -> None:
    """Pick `option` (a locator of the list's option) in the select box `box`. A click first scrolls
    the box into view, and that scroll closes the list the click opens (the list closes on scroll):
    scroll first, let the page settle, then open it — again if it did not open."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box.scroll_into_view_if_needed()
    for _ in range(4):
        page.wait_for_timeout(500)
        box.click()
        try:
            option.click(timeout=3_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    box.click()
    option.click()  # fails with Playwright's own account of what it waited for
