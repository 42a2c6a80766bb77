"""Content from traffic is data, never markup — in a real browser. Products whose titles hold script and
HTML markup go through the session's API (`/predict`); a drift report is made over exactly those
predictions (`python -m core drift`, as an operator or the monitoring flow makes one); the console's Drift
page shows it. The titles read as text in Evidently's report, the report runs in an opaque origin, and
nothing the titles hold ran: no dialog, the console's title unchanged, no global set in any frame."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Console, choose, exceptions, open_page, snapshot
from tests.e2e.test_operations import _when, drift_reports, logged_predictions, wait_until

pytestmark = pytest.mark.slow

# Ends Evidently's JSON <script> block and opens one; an element whose error handler runs if drawn as HTML
PAYLOAD = (
    "</script><script>alert('pwned');window.__pwned=1;top.document.title='pwned'</script>"
    "<img src=x onerror=\"alert('pwned');window.__pwned=2\">"
)
ROWS = 100  # the session's RAKUTEN_MONITOR_MIN_ROWS: the fewest a report takes


def drift_over_latest(console: Console, rows: int) -> str:
    """`python -m core drift --rows N` on the session's project: a report over the latest N predictions."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env |= {"RAKUTEN_ROOT": str(console.root), "RAKUTEN_MONITOR_MIN_ROWS": str(rows), "COLUMNS": "200"}
    command = [sys.executable, "-m", "core", "drift", "--rows", str(rows)]
    done = subprocess.run(command, env=env, cwd=console.root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_titles_holding_markup_show_as_text_and_run_nothing(
    page: Any, console: Console, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    logged = logged_predictions(console.root)
    with httpx.Client(base_url=console.api_url, timeout=30) as api:
        for i in range(ROWS):
            answer = api.post("/predict", json={"designation": f"Lampe de chevet {i} {PAYLOAD}"})
            assert answer.status_code == 200, answer.text
    wait_until(lambda: logged_predictions(console.root) >= logged + ROWS, 30, "the API's inference log")
    known = {r.html for r in drift_reports(console.root)}
    drift_over_latest(console, ROWS)
    (report,) = [r for r in drift_reports(console.root) if r.html not in known]
    assert report.current_rows == ROWS, report
    written = (console.root / "reports" / "evidently" / report.html).read_text(encoding="utf-8")
    assert PAYLOAD not in written  # in the file, the titles are JSON strings with < > & escaped
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert('pwned')" in written

    dialogs: list[str] = []

    def dialog_opened(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dialog_opened)
    open_page(page, console, "drift", "Drift")
    title = page.title()
    label = f"{_when(report)} · {'🔴 drift' if report.drift_detected else '🟢 no drift'}"
    picker = page.get_by_label("Report", exact=True)
    choose(page, picker, page.get_by_role("option", name=label, exact=True))
    expect(picker).to_have_value(label)

    outer = page.locator('iframe[data-testid="stIFrame"]')
    inner = outer.content_frame.locator("iframe")
    assert inner.get_attribute("sandbox") == "allow-scripts"
    shown = inner.content_frame
    shown.get_by_text("Dataset Drift").first.wait_for(timeout=60_000)
    # the whole report is in view, none of it cut on the right: drawn at its width, scaled to the column
    right, width = shown.locator("body").evaluate(
        "() => [Math.max(...[...document.querySelectorAll('*')].map(e => e.getBoundingClientRect().right)),"
        " innerWidth]"
    )
    assert right <= width + 1, (right, width)
    title_row = shown.get_by_role("row").filter(has=shown.get_by_role("cell", name="title", exact=True))
    # The report is drawn at its own width and scaled to the column: Playwright aims a locator's click
    # without the frame's scale (a real pointer lands right: checked with mouse clicks at the drawn place),
    # so the clicks are dispatched to the elements themselves.
    title_row.get_by_role("button", name="Detail panel visibility toggle").dispatch_event("click")
    shown.get_by_role("tab", name="current: characteristic examples").dispatch_event("click")
    examples = shown.get_by_role("rowheader", name=re.compile(r"^Lampe de chevet \d+ "))
    expect(examples.first).to_contain_text(PAYLOAD)  # the markup, as text

    frames = [frame.evaluate("[self.origin, typeof window.__pwned]") for frame in page.frames]
    assert all(pwned == "undefined" for _, pwned in frames), frames  # console, Streamlit's frame, report
    report_frames = [f for f in page.frames if f.evaluate("self.origin") == "null"]
    assert len(report_frames) == 1, frames  # the report, and only it, in an opaque origin
    assert PAYLOAD in report_frames[0].locator("body").inner_text()
    # no element was made of a title's markup (so no error handler of one can run later either)
    assert report_frames[0].evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert dialogs == [] and page.title() == title and "pwned" not in title, (dialogs, page.title())
    assert not exceptions(page)
    snapshot(page, screenshots / "drift-markup-as-text.png")
