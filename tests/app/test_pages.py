"""Console pages through Streamlit's AppTest: every page renders with and without data, and the Data
explorer behaves (filter by class → only that class shown; search; detail view)."""

import shutil
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.categories import label
from core.data.ingest import ingest

HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")
PAGES = ("overview.py", "data_explorer.py")


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


@pytest.fixture
def ingested(project: Path, demo_source: Path) -> Path:
    raw = project / "data" / "raw"
    shutil.copytree(demo_source, raw)
    next((raw / "images" / "image_train").iterdir()).unlink()  # one missing image to report
    ingest(raw, project / "data" / "interim", image_check="decode")
    return project


def _open(page: str | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(f"../pages/{page}").run()
        assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_data(ingested: Path, page: str) -> None:
    at = _open(page)
    assert at.title


def test_explorer_says_what_to_do_without_data(project: Path) -> None:
    """(Home's data card: tests/app/test_overview_page.py.)"""
    at = _open("data_explorer.py")
    assert any("No ingested data yet" in i.value for i in at.info)
    assert at.button(key="prepare").label.startswith("Generate demo data")


def test_prepare_button_generates_and_ingests(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAKUTEN_DEMO_ROWS", "60")
    monkeypatch.setenv("RAKUTEN_DEMO_IMAGES", "false")
    at = _open("data_explorer.py")
    at.button(key="prepare").click().run()
    assert not at.exception
    assert (project / "data" / "interim" / "train.parquet").exists()
    assert at.metric[0].value == "60"


def test_summary_metrics(ingested: Path) -> None:
    at = _open("data_explorer.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "400"
    assert metrics["Classes"] == "27"
    assert metrics["Missing images"] == "1"
    assert 30 <= int(metrics["Empty descriptions"].rstrip("%")) <= 42


def test_filter_by_class_shows_only_that_class(ingested: Path) -> None:
    at = _open("data_explorer.py")
    at.multiselect(key="classes").set_value([2583]).run()
    shown = at.dataframe(key="products").value
    assert len(shown) > 0
    assert set(shown["category"]) == {label(2583)}
    assert any(f"{len(shown)} of 400 products match" in c.value for c in at.caption)


def test_search_and_image_filters(ingested: Path) -> None:
    at = _open("data_explorer.py")
    at.selectbox(key="images").set_value("without image").run()
    assert len(at.dataframe(key="products").value) == 1
    at.selectbox(key="images").set_value("all").run()
    at.text_input(key="query").input("zzzz-no-such-word").run()
    assert len(at.dataframe(key="products").value) == 0
    assert not at.exception


def test_validation_report_lists_the_problem(ingested: Path) -> None:
    at = _open("data_explorer.py")
    problems = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert problems["problem"].tolist() == ["missing_image"]
    assert problems["rows"].tolist() == [1]


def test_test_split_has_no_labels_but_renders(ingested: Path) -> None:
    at = _open("data_explorer.py")
    at.segmented_control(key="split").set_value("test").run()
    assert not at.exception
    assert at.metric[1].value == "—"


def test_configured_data_not_yet_ingested_offers_ingest(
    project: Path, demo_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(demo_source))
    at = _open("data_explorer.py")
    button = at.button(key="prepare")
    assert button.label == "Ingest the data"
    button.click().run()
    assert not at.exception
    assert at.metric[0].value == "400"


def test_configured_folder_without_files_shows_the_error_and_no_button(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAKUTEN_DATA_DIR", str(project / "nowhere"))
    at = _open("data_explorer.py")
    assert any("does not exist" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "prepare"]


def test_changed_raw_files_are_flagged_with_a_reingest_button(ingested: Path) -> None:
    x = ingested / "data" / "raw" / "X_train_update.csv"
    x.write_text(x.read_text(encoding="utf-8").replace("\n0,", "\n0,Nouveau ", 1), encoding="utf-8")
    at = _open("data_explorer.py")
    assert any("changed since the last ingest" in w.value for w in at.warning)
    at.button(key="prepare").click().run()
    assert not at.exception
    assert not at.warning
