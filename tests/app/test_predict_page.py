"""Live prediction page through AppTest: text (from an example), a dropped image, text + image, a
batch CSV, bad files shown as errors, and which backend answered — in-process, or the real API
process when RAKUTEN_API_URL points at it (with the fallback when it does not answer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.categories import names
from tests.core.serving.conftest import picture, product_photo, unfamiliar_photo
from tests.integration.test_api_server import Server, start_server, stop_server

HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")


def _open() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("../pages/predict.py").run()
    assert not at.exception, at.exception
    return at


def _button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if b.label == label)


def _predicted(at: AppTest) -> str:
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Model"] == "v1"
    assert any(c.value == "Predicted category" for c in at.caption)
    return str(at.subheader[0].value)


@pytest.fixture(autouse=True)
def _own_inference_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console logs its in-process predictions: each test into its own log, not the shared project's."""
    monkeypatch.setenv("RAKUTEN_INFERENCE_LOG_URL", f"sqlite:///{tmp_path / 'inference.db'}")


def test_text_prediction_from_an_example(trained_project: Path) -> None:
    at = _open()
    assert any("in-process" in c.value for c in at.caption)
    at.selectbox(key="example").set_value("Swimming pool").run()
    _button(at, "Predict").click().run()
    assert not at.exception, at.exception
    assert _predicted(at) == names()[2583]
    assert any("based on text" in c.value for c in at.caption)
    from core.config import Settings
    from core.storage.inference_log import read_inference_log
    from core.ui.prediction_view import _log_writer

    settings = Settings()
    assert _log_writer(str(settings.inference_log_url)).flush()
    logged = read_inference_log(settings)  # drift monitoring sees the console's answers too
    assert logged["origin"].tolist() == ["console"] and logged["predicted_code"].tolist() == [2583]


def test_dropped_image_gets_a_top5(trained_project: Path) -> None:
    at = _open()
    at.file_uploader(key="image_upload").upload(
        "product.png", picture("PNG", size=(200, 160)), "image/png"
    ).run()
    assert not at.exception, at.exception
    assert _predicted(at) in names().values()
    assert any("based on image" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1  # the top-5 chart


def test_corrupt_image_is_an_error_message(trained_project: Path) -> None:
    at = _open()
    at.file_uploader(key="image_upload").upload("broken.jpg", b"\xff\xd8\xff not a jpeg", "image/jpeg").run()
    assert not at.exception, at.exception
    assert any("Cannot read image" in e.value for e in at.error)


def test_text_and_image_together(trained_project: Path) -> None:
    at = _open()
    # a form: values are sent together with the submit click
    at.text_input(key="product_designation").input("Piscine tubulaire Intex 366 x 122 cm")
    at.file_uploader(key="product_image").upload("p.jpg", product_photo(), "image/jpeg")
    _button(at, "Predict from text and photo").click().run()
    assert not at.exception, at.exception
    assert any("based on text + image" in c.value for c in at.caption)
    assert not at.info and not at.warning  # a photo like the training ones: nothing to explain


def test_a_photo_unlike_the_training_photos_is_set_aside_and_the_page_says_why(
    trained_project: Path,
) -> None:
    at = _open()
    at.text_input(key="product_designation").input("Piscine tubulaire Intex 366 x 122 cm")
    at.file_uploader(key="product_image").upload("scene.jpg", unfamiliar_photo(1), "image/jpeg")
    _button(at, "Predict from text and photo").click().run()
    assert not at.exception, at.exception
    assert _predicted(at) == names()[2583]  # what the title says
    assert any("based on text ·" in c.value for c in at.caption)
    [notice] = at.info
    assert "Answered from the text alone" in notice.value and "unlike the photos" in notice.value
    assert any("set aside: unfamiliar photo" in m.value for m in at.markdown)


def test_an_unfamiliar_photo_alone_is_answered_as_a_guess(trained_project: Path) -> None:
    at = _open()
    at.file_uploader(key="image_upload").upload("scene.jpg", unfamiliar_photo(1), "image/jpeg").run()
    assert not at.exception, at.exception
    assert any("based on image" in c.value for c in at.caption)
    assert any("treat the answer as a guess" in w.value for w in at.warning)


def test_batch_csv_gives_a_table_and_a_download(trained_project: Path) -> None:
    csv = ",designation,description\n10,Piscine Intex,pompe\n11,Livre ancien,\n12,Figurine Funko Pop,\n"
    at = _open()
    at.file_uploader(key="batch_upload").upload("x_test.csv", csv.encode(), "text/csv").run()
    assert not at.exception, at.exception
    results = at.dataframe[0].value
    assert results["id"].tolist() == ["10", "11", "12"] and len(results) == 3
    assert results["prdtypecode"].iloc[0] == 2583
    assert at.get("download_button")


def test_malformed_csv_is_explained(trained_project: Path) -> None:
    at = _open()
    at.file_uploader(key="batch_upload").upload("bad.csv", b"title,text\nA,B\n", "text/csv").run()
    assert not at.exception, at.exception
    assert any("'designation' column" in e.value for e in at.error)


def test_no_model_yet_says_what_to_run(project: Path) -> None:
    at = _open()
    assert any("No champion model yet" in i.value for i in at.info)


def test_unreachable_api_falls_back_in_process(
    trained_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAKUTEN_API_URL", "http://127.0.0.1:9")
    at = _open()
    assert any("cannot answer" in w.value and "in-process" in w.value for w in at.warning)
    at.selectbox(key="example").set_value("Swimming pool").run()
    _button(at, "Predict").click().run()
    assert _predicted(at) == names()[2583]


@pytest.fixture(scope="module")
def api(trained_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(trained_source, tmp_path_factory.mktemp("page-api") / "api.log", alias_check_s=0)
    yield server
    stop_server(server)


def test_predictions_go_through_the_api_when_configured(
    trained_project: Path, api: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAKUTEN_API_URL", api.url)
    at = _open()
    assert any(f"prediction API at `{api.url}`" in c.value for c in at.caption)
    at.file_uploader(key="image_upload").upload("p.png", picture("PNG"), "image/png").run()
    assert not at.exception, at.exception
    assert any("answered by the API" in c.value for c in at.caption)
    at.file_uploader(key="batch_upload").upload(
        "x.csv", b"designation\nPiscine Intex\nLivre\n", "text/csv"
    ).run()
    assert len(at.dataframe[0].value) == 2
