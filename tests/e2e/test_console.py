"""The console in a real browser: every page renders without a traceback; a text prediction and a
dropped product photo each show the top 5 categories by name, answered by the prediction API the test
started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Console, exceptions, open_page, snapshot

pytestmark = pytest.mark.slow

PAGES = {  # url path → the page's title
    "": "Rakuten product classification",
    "data_explorer": "Data explorer",
    "review": "Review",
    "predict": "Live prediction",
    "pipeline_runs": "Pipeline runs",
    "drift": "Drift",
    "service_health": "Service health",
    "experiments": "Experiments",
    "models": "Models",
}


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_renders(page: Any, console: Console, screenshots: Path, path: str) -> None:
    open_page(page, console, path, PAGES[path])
    page.wait_for_timeout(1500)  # let fragments and charts settle
    assert not exceptions(page)
    snapshot(page, screenshots / f"page-{path or 'overview'}.png")


def _top5(page: Any) -> list[str]:
    """The category names on the top-k chart's axis (plotly draws them as SVG text)."""
    ticks = page.locator(".js-plotly-plot .yaxislayer-above .ytick text")
    ticks.first.wait_for()
    return [t for t in ticks.all_text_contents() if t and t.strip()]


def test_text_prediction_shows_a_named_top5(page: Any, console: Console, screenshots: Path) -> None:
    open_page(page, console, "predict", "Live prediction")
    page.get_by_label("Title (designation)").first.fill("Piscine tubulaire Intex 366 x 122 cm avec pompe")
    page.get_by_text(f"Answered by the prediction API at {console.api_url}").first.wait_for()
    page.get_by_role("button", name="Predict", exact=True).click()
    page.locator('[data-testid="stMetric"]').first.wait_for()
    page.get_by_text("answered by the API in").first.wait_for()
    names = _top5(page)
    assert len(names) == 5 and all("(" in n and ")" in n for n in names), names  # "name (code)"
    snapshot(page, screenshots / "predict-text.png")


def test_dropped_photo_shows_a_named_top5(page: Any, console: Console, screenshots: Path) -> None:
    picture = next((console.root / "data" / "raw" / "images" / "image_test").glob("*.jpg"))
    open_page(page, console, "predict", "Live prediction")
    page.get_by_role("tab", name="Image", exact=True).click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(picture))
    page.get_by_text("based on image").first.wait_for()
    page.get_by_text("answered by the API in").first.wait_for()
    names = _top5(page)
    assert len(names) == 5, names
    snapshot(page, screenshots / "predict-image.png")
