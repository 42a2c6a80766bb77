"""Real-browser fixtures: a demo project with two registered versions, the local stack
(`python -m core up`: Prefect server and worker, the prediction API, the console predicting through
it) started on it once per session, and Debian's Chromium driven by Playwright (no browser download).
Screenshots go to `$RAKUTEN_E2E_SCREENSHOTS` (default: a temporary folder, printed)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import build_two_run_project, local_stack, require_tool
from tests.integration.test_api_server import TOKEN

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Console:
    url: str
    root: Path  # its project
    api_url: str  # the prediction API it sends predictions to
    env: dict[str, str] = field(default_factory=dict)  # what points a process at its stack (ports, root)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed browser test's report carries what the page showed then (its address, alerts and text):
    a CI log is often all there is to go on."""
    outcome = yield
    report = outcome.get_result()
    page = getattr(item, "funcargs", {}).get("page")
    if report.when != "call" or not report.failed or page is None:
        return
    try:
        alerts = page.get_by_role("alert").all_inner_texts()
        text = page.locator('[data-testid="stMain"]').first.inner_text(timeout=5_000)
    except Exception as exc:  # the page itself may be what broke
        report.sections.append(("page at failure", f"unreadable: {exc}"))
        return
    shown = f"url: {page.url}\nalerts: {alerts}\n--- text ---\n{text[-6_000:]}"
    report.sections.append(("page at failure", shown))


@pytest.fixture(scope="session")
def e2e_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo data with images; v1 champion, v2 registered and refused by the gate (promotable by hand)."""
    return build_two_run_project(tmp_path_factory, "e2e")


@pytest.fixture(scope="session")
def console(e2e_project: Path) -> Iterator[Console]:
    """The local stack on the project (`python -m core up`: Prefect server and worker, the API — admin
    token set, following the champion alias every second — and the console predicting through it);
    drift reports from 100 predictions on. Yields the console's URL."""
    extra = {
        "RAKUTEN_API_ADMIN_TOKEN": TOKEN,
        "RAKUTEN_API_ALIAS_CHECK_S": "1",
        "RAKUTEN_MONITOR_MIN_ROWS": "100",
    }
    with local_stack(e2e_project, extra) as stack:
        yield Console(stack.console_url, e2e_project, stack.api_url, stack.env)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread while open,
    which would turn later tests' Prefect calls asynchronous."""
    found = (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome"))
    chromium = next((path for path in found if path), None) or require_tool(
        "chromium", "Debian: apt-get install chromium"
    )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # as the pages' own timeout: a busy machine is slow, not wrong
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
