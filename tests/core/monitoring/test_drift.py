"""Drift reports on the session's trained project: unshifted traffic (held-back test products scored
as the API scores them) gives no drift; shifted traffic gives drift, with the right columns; the
HTML, the JSON summary and the index are written; too little traffic is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.config import Settings
from core.monitoring.drift import DriftError, run_drift
from core.monitoring.simulate import Shift, held_back_products, log_rows, shift_products, to_product
from core.serving.predictor import ImageLimits, predict
from core.storage.drift_reports import DriftSummary, latest_report, list_reports, report_html

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(trained_project: Path, tmp_path: Path) -> Settings:
    """The trained project, with reports written to this test's own folder."""
    return Settings(root=trained_project, reports_dir=tmp_path / "reports")


@pytest.fixture
def champion(settings: Settings) -> object:
    from core.tracking.store import load_classifier

    return load_classifier(settings, alias="champion")


def traffic(settings: Settings, classifier: object, shift: Shift, *, images: bool = True) -> pd.DataFrame:
    """Every held-back test product once, shifted, scored and logged as the API would."""
    products = held_back_products(settings)
    sent = shift_products(products, shift, n=len(products), seed=3)
    batch = [to_product(row, shift, images=images) for row in sent.itertuples(index=False)]
    answers = predict(classifier, batch, ImageLimits.of(settings), k=1)  # type: ignore[arg-type]
    return log_rows(batch, answers, 1)


STRONG = Shift(class_mix=0.0, new_vocabulary=0.5, darker=0.8, empty_description=0.7)


def test_unshifted_traffic_shows_no_drift(settings: Settings, champion: object) -> None:
    summary = run_drift(settings, champion, 1, current=traffic(settings, champion, Shift()))  # type: ignore[arg-type]
    assert not summary.drift_detected, summary.reasons
    assert summary.drifted_share < settings.retrain_drifted_share
    assert summary.columns_compared >= 13 and not summary.skipped
    kinds = {c.column: c.kind for c in summary.columns}
    assert kinds["title"] == "text" and kinds["predicted_code"] == "categorical"
    assert kinds["title_chars"] == "descriptor" and kinds["image_brightness"] == "numerical"
    assert kinds["photo"] == "categorical"


def test_photos_unlike_the_training_ones_drift_the_photo_column(settings: Settings, champion: object) -> None:
    current = traffic(settings, champion, Shift(unfamiliar_photos=0.5))
    assert current["photo_unfamiliar"].mean() > 0.3  # the guard saw them (half the photos are scenes)
    summary = run_drift(settings, champion, 1, current=current)  # type: ignore[arg-type]
    photo = next(c for c in summary.columns if c.column == "photo")
    assert photo.drifted, summary.columns


def test_shifted_traffic_drifts_and_says_where(settings: Settings, champion: object) -> None:
    summary = run_drift(settings, champion, 1, current=traffic(settings, champion, STRONG))  # type: ignore[arg-type]
    assert summary.drift_detected and summary.drifted_share >= settings.retrain_drifted_share
    drifted = {c.column for c in summary.columns if c.drifted}
    assert {"image_brightness", "description_length", "description_empty"} <= drifted
    assert drifted & {"title", "title_chars", "title_words"}  # half the titles name unseen products
    assert summary.prediction_drift  # darker pictures and foreign titles move the predictions too
    assert summary.reasons[0].startswith("drift detected")

    folder = settings.drift_dir
    html = report_html(settings, summary)
    page = html.read_text(errors="replace")
    assert page.lstrip().lower().startswith("<!doctype html>") and "image_brightness" in page
    on_disk = json.loads((folder / summary.html.replace(".html", ".json")).read_text())
    assert DriftSummary.from_dict(on_disk) == summary
    assert latest_report(settings) == summary


def test_index_lists_reports_newest_first_and_the_reference_is_cached(
    settings: Settings, champion: object
) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    calm = run_drift(settings, champion, 1, current=traffic(settings, champion, Shift()), now=now)  # type: ignore[arg-type]
    cached = list((settings.drift_dir / "reference").glob("*.parquet"))
    assert len(cached) == 1
    built = cached[0].stat().st_mtime_ns
    later = now + timedelta(hours=1)
    shifted = run_drift(settings, champion, 1, current=traffic(settings, champion, STRONG), now=later)  # type: ignore[arg-type]
    assert cached[0].stat().st_mtime_ns == built  # same champion, same data: not rebuilt
    assert [r.created_at for r in list_reports(settings)] == [shifted.created_at, calm.created_at]
    assert [r.drift_detected for r in list_reports(settings)] == [True, False]


def test_text_only_traffic_skips_the_image_columns(settings: Settings, champion: object) -> None:
    current = traffic(settings, champion, Shift(), images=False)
    summary = run_drift(settings, champion, 1, current=current)  # type: ignore[arg-type]
    assert {s.split(":")[0] for s in summary.skipped} == {
        "image_brightness",
        "image_saturation",
        "image_red",
        "image_green",
        "image_blue",
    }
    assert "image_brightness" not in {c.column for c in summary.columns}
    assert {c.column for c in summary.columns if c.drifted} >= {"has_image"}  # every product lost its photo


def test_photo_only_predictions_have_no_title_and_do_not_break_the_report(
    settings: Settings, champion: object
) -> None:
    """A photo dropped alone is logged with an empty title: its text descriptors are missing, not a
    division by zero (found by the browser tests)."""
    current = traffic(settings, champion, Shift())
    current.loc[current.index[:25], "designation"] = ""
    summary = run_drift(settings, champion, 1, current=current)  # type: ignore[arg-type]
    assert summary.current_rows == len(current)
    assert "title_non_letter_pct" in {c.column for c in summary.columns}


def test_too_little_traffic_is_a_clear_error(settings: Settings, champion: object) -> None:
    few = traffic(settings, champion, Shift()).head(settings.monitor_min_rows - 1)
    with pytest.raises(DriftError, match="RAKUTEN_MONITOR_MIN_ROWS"):
        run_drift(settings, champion, 1, current=few)  # type: ignore[arg-type]
    assert list_reports(settings) == []  # nothing written


def test_no_report_yet(settings: Settings) -> None:
    assert latest_report(settings) is None and list_reports(settings) == []


def test_labels_add_classification_quality(settings: Settings, champion: object) -> None:
    """Held-out labelled products, each its own request: the report is about the labelled requests and
    carries accuracy / weighted F1 next to the reference's."""
    from core.monitoring.simulate import request_ids

    products = held_back_products(settings, labelled=True)
    # The hold-out (10 % of 1,500) is smaller than a report's minimum: products repeat after each was sent.
    sent = shift_products(products, Shift(), n=max(len(products), settings.monitor_min_rows), seed=4)
    ids = request_ids(len(sent), seed=4)
    batch = [to_product(row, Shift()) for row in sent.itertuples(index=False)]
    answers = predict(champion, batch, ImageLimits.of(settings), k=1)  # type: ignore[arg-type]
    logged = log_rows(batch, answers, 1, ids)
    labels = pd.Series(sent["label"].to_numpy(), index=ids)

    summary = run_drift(settings, champion, 1, current=logged, labels=labels)  # type: ignore[arg-type]
    assert summary.quality is not None and summary.current_rows == len(sent)
    now, before = summary.quality["current"], summary.quality["reference"]
    assert 0.3 < now["weighted_f1"] <= 1 and 0.3 < before["weighted_f1"] <= 1 and now["rows"] == len(sent)
    assert any("weighted F1 on" in r for r in summary.reasons)
    assert "F1" in report_html(settings, summary).read_text(errors="replace")

    with pytest.raises(DriftError, match="None of the labelled request ids"):
        run_drift(settings, champion, 1, current=logged, labels=pd.Series([10], index=["nope"]))  # type: ignore[arg-type]


def test_labels_file_errors_are_clear(tmp_path: Path) -> None:
    from core.errors import DataFormatError
    from core.storage.drift_reports import read_labels

    bad = tmp_path / "labels.csv"
    bad.write_text("request_id,code\nr1,10\n")
    with pytest.raises(DataFormatError, match=r"lacks \[.prdtypecode.\]"):
        read_labels(bad)
    bad.write_text("request_id,prdtypecode\nr1,ten\n")
    with pytest.raises(DataFormatError, match=r"1 labels .* are not class codes"):
        read_labels(bad)
    bad.write_text("request_id,prdtypecode\nr1,10\nr2,2583\n")
    assert read_labels(bad).to_dict() == {"r1": 10, "r2": 2583}


def test_reviewed_predictions_give_the_window_a_real_accuracy() -> None:
    from core.monitoring.drift import reviewed_quality

    window = pd.DataFrame(
        {"request_id": ["a", "b", "c", "c"], "item": [0, 0, 0, 1], "predicted_code": [10, 40, 50, 2705]}
    )
    reviewed = pd.Series([10, 2705, 2705], index=["a:0", "b:0", "c:1"])  # b was wrong
    found = reviewed_quality(window, reviewed)
    assert found is not None and found["rows"] == 3 and abs(found["accuracy"] - 2 / 3) < 1e-9
    assert reviewed_quality(window, pd.Series([10], index=["z:0"])) is None
