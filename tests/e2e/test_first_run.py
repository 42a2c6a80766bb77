"""A new user's first half hour, in a fresh clone of this repository: `make console` (a subprocess),
every page opened in two tabs at once while the stack is still starting (data being prepared, the first
model training on the worker) — no traceback anywhere —, the first training followed to its end,
a retrain, a drift report made from the console alone (held-back products sent from the Drift page,
then the report), then SIGTERM: no process of the stack is left, and `git status` is clean."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import exceptions, snapshot
from tests.e2e.test_console import PAGES

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@dataclass
class FirstRun:
    root: Path  # the fresh clone
    url: str
    make: subprocess.Popen[bytes]
    log: Path
    seen: set[psutil.Process]  # every process the stack has had under `make`

    def watch(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.seen.update(psutil.Process(self.make.pid).children(recursive=True))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    """A fresh clone of the repository's HEAD running `make console` (this checkout's virtual
    environment, left as it is; the clone's code, on free ports; 1,500 demo products)."""
    root = tmp_path_factory.mktemp("first-run") / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True, timeout=120)
    _as_make_console_installs(root)
    venv = Path(sys.executable).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env |= {
        "PYTHONPATH": str(root),  # the clone's `core`, not the editable install's checkout
        "RAKUTEN_PREFECT_PORT": str(free_port()),
        "RAKUTEN_API_PORT": str(free_port()),
        "RAKUTEN_CONSOLE_PORT": (port := str(free_port())),
        "RAKUTEN_DEMO_ROWS": "1500",
        "RAKUTEN_MONITOR_MIN_ROWS": "100",
    }
    log = root.parent / "make-console.log"
    # `-o`: the environment is installed; never re-install it into this checkout's venv from the clone
    command = ["make", "--no-print-directory", f"VENV={venv}", "-o", f"{venv}/.runtime", "console"]
    with log.open("wb") as out:
        make = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    run = FirstRun(root, f"http://127.0.0.1:{port}", make, log, set())
    try:
        deadline = time.monotonic() + 300  # the services start first (demo data and a model follow)
        while not _answers(f"{run.url}/_stcore/health"):
            run.watch()
            assert make.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
            time.sleep(0.2)
        yield run
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)


def _as_make_console_installs(root: Path) -> None:
    """`make console` installs no vision extra, so a new user's `image.encoder: auto` is the colour /
    edge encoder; this checkout's environment may have the extra (CI installs it, and the pretrained
    path has tests of its own): the clone says so in a commit of its own, and stays a clean clone."""
    params = root / "params.yaml"
    text = params.read_text(encoding="utf-8")
    assert "encoder: auto" in text
    params.write_text(text.replace("encoder: auto", "encoder: colour_edge", 1), encoding="utf-8")
    git = ["git", "-c", "user.name=first run", "-c", "user.email=first-run@example.invalid"]
    subprocess.run([*git, "commit", "-q", "-am", "what make console installs"], cwd=root, check=True)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _text(page: Any) -> str:
    return str(page.locator('[data-testid="stMain"]').first.inner_text())


def test_every_page_in_two_tabs_during_the_cold_start(
    first_run: FirstRun, browser: Any, screenshots: Path
) -> None:
    contexts = [browser.new_context(viewport={"width": 1300, "height": 1000}) for _ in range(2)]
    tabs = [context.new_page() for context in contexts]
    for tab in tabs:  # the machine is at its busiest (data, a first training, two tabs): slow, not wrong
        tab.set_default_timeout(180_000)
    try:
        for path, title in PAGES.items():
            for tab in tabs:  # both tabs ask for the page before either is drawn
                tab.goto(f"{first_run.url}/{path}", wait_until="commit")
            for i, tab in enumerate(tabs):
                tab.get_by_role("heading", name=title, exact=True).first.wait_for()
                tab.wait_for_load_state("networkidle")
                first_run.watch()
                assert not exceptions(tab), (path, i, exceptions(tab))
                assert "Traceback" not in _text(tab), (path, i)
        snapshot(tabs[0], screenshots / "first-run-models.png")
    finally:
        for context in contexts:
            context.close()


def _completed(page: Any, run: str) -> None:
    """The run's live header (its name, then its state badge) reaches COMPLETED."""
    from playwright.sync_api import expect

    header = page.get_by_text(re.compile(rf"^{run} — ")).first
    expect(header).to_contain_text("COMPLETED", timeout=600_000)


def test_retrain_then_a_drift_report_from_the_console_alone(
    first_run: FirstRun, page: Any, screenshots: Path
) -> None:
    _wait_ready(first_run)
    log = (first_run.root / ".stack" / "logs" / "prepare.log").read_text(errors="replace")
    first = re.search(r"the first training runs on the worker \((training-[0-9a-f]{8})\)", log)
    assert first, log
    page.goto(f"{first_run.url}/pipeline_runs")
    page.get_by_role("heading", name="Pipeline runs", exact=True).first.wait_for()
    _completed(page, first.group(1))  # followed live
    first_run.watch()
    page.get_by_role("button", name="Retrain", exact=True).click()
    started = page.get_by_text(re.compile(r"Started training run training-[0-9a-f]{8}\.")).first
    name = re.search(r"training-[0-9a-f]{8}", started.inner_text())
    assert name, started.inner_text()
    _completed(page, name.group(0))
    first_run.watch()

    page.goto(f"{first_run.url}/drift")
    page.get_by_role("heading", name="Drift", exact=True).first.wait_for()
    page.get_by_text("more predictions are needed").first.wait_for()
    page.get_by_role("button", name=re.compile(r"Send [\d,]+ held-back products")).click()
    page.get_by_text(re.compile(r"Sent [\d,]+ held-back products")).first.wait_for(timeout=300_000)
    page.get_by_role("button", name="Generate report now").click()
    page.get_by_text("New report").first.wait_for(timeout=300_000)
    page.get_by_role("heading", name="Evidently report").first.wait_for()
    assert not exceptions(page)
    snapshot(page, screenshots / "first-run-drift.png")
    assert list((first_run.root / "reports" / "evidently").glob("*.html"))


def test_sigterm_stops_every_process_and_leaves_git_status_clean(first_run: FirstRun) -> None:
    first_run.watch()
    assert len(first_run.seen) >= 5, first_run.seen  # make, up, supervisord and the programs
    os.killpg(first_run.make.pid, signal.SIGTERM)  # what a terminal's or a service manager's stop sends
    first_run.make.wait(timeout=120)
    _, alive = psutil.wait_procs(list(first_run.seen), timeout=30)
    left = [(p.pid, _cmdline(p)) for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"left running: {left}"
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=first_run.root, capture_output=True, text=True, check=True
    )
    assert status.stdout == "", f"files git sees after first use:\n{status.stdout}"


def _wait_ready(run: FirstRun) -> None:
    """Until `make console` said the whole stack is up (the worker included, the data prepared)."""
    deadline = time.monotonic() + 600
    while "Ready" not in run.log.read_text(errors="replace"):
        run.watch()
        assert time.monotonic() < deadline, run.log.read_text(errors="replace")[-3000:]
        time.sleep(0.3)


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())[:160]
    except psutil.Error:
        return "?"
