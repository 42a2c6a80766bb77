"""The training pipeline end to end: submission-format predictions, reports, the image-feature cache,
a data directory outside the project (renamed files), and what happens when there is no champion."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.categories import CODES
from core.config import Settings
from core.data.ingest import load_report
from core.features.build import FeatureSet
from core.features.cache import CacheStats, ImageFeatureCache
from core.models.evaluate import FILES as EVALUATION_FILES
from core.params import load_params
from core.pipeline import run_pipeline
from core.pipeline.steps import features_step, predict_step
from core.tracking.registry import NoChampionError, open_registry


def _x_test_ids(path: Path) -> list[int]:
    return pd.read_csv(path, index_col=0, usecols=[0]).index.tolist()


# --- outputs of the session's trained project ---------------------------------------------------------
def test_predictions_are_in_submission_format(trained_project: Path) -> None:
    path = trained_project / "data" / "processed" / "predictions.csv"
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",prdtypecode"
    predictions = pd.read_csv(path, index_col=0)
    assert predictions.index.tolist() == _x_test_ids(trained_project / "data" / "raw" / "X_test_update.csv")
    assert predictions.index.is_unique
    assert set(predictions["prdtypecode"]) <= set(CODES)
    assert predictions["prdtypecode"].nunique() > 10  # not one answer for everything


def test_probabilities_are_one_distribution_per_product(trained_project: Path) -> None:
    processed = trained_project / "data" / "processed"
    probabilities = pd.read_csv(processed / "probabilities.csv", index_col="id")
    predictions = pd.read_csv(processed / "predictions.csv", index_col=0)
    assert probabilities.index.equals(predictions.index)
    assert [int(c) for c in probabilities.columns] == sorted(CODES)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)  # written rounded to 6 decimals
    best = probabilities.columns[probabilities.to_numpy().argmax(axis=1)].astype(int)
    assert (best == predictions["prdtypecode"].to_numpy()).all()


def test_evaluation_reports_are_written(trained_project: Path) -> None:
    evaluation = trained_project / "reports" / "evaluation"
    for name in [*EVALUATION_FILES.values(), "behaviour.json", "figures/confusion_matrix.png"]:
        assert (evaluation / name).is_file(), name
    metrics = json.loads((evaluation / "metrics.json").read_text(encoding="utf-8"))
    # Chance on 27 imbalanced classes is about 0.07 weighted F1 (0.12 for always "pool & spa").
    assert metrics["weighted_f1"] > 0.5
    assert metrics["top5_accuracy"] >= metrics["top3_accuracy"] >= metrics["accuracy"]
    outcome = json.loads((trained_project / "reports" / "registry.json").read_text(encoding="utf-8"))
    assert (outcome["version"], outcome["promoted"], outcome["champion_after"]) == (1, True, 1)


# --- feature cache --------------------------------------------------------------------------------------
def test_second_features_step_encodes_no_image(
    trained_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read the trained project's tables and cache, write the features elsewhere (its files stay as they are).
    settings = Settings(
        root=tmp_path / "other",
        interim_dir=trained_project / "data" / "interim",
        cache_dir=trained_project / "data" / "cache",
    )
    stats: list[CacheStats] = []
    original = ImageFeatureCache.features

    def recording(self: ImageFeatureCache, *args, **kwargs):  # type: ignore[no-untyped-def]
        out = original(self, *args, **kwargs)
        stats.append(self.last_stats)
        return out

    monkeypatch.setattr(ImageFeatureCache, "features", recording)
    store = trained_project / "data" / "cache" / "image_features" / "colour_edge-v1" / "keys.npy"
    stamp = store.stat().st_mtime_ns

    features = features_step(settings, load_params(settings.params_file), workers=2)

    assert len(stats) == 1
    assert stats[0].encoded == 0 and stats[0].images > 0
    assert stats[0].hits == stats[0].images == int(features.has_image.sum())
    assert store.stat().st_mtime_ns == stamp  # nothing new appended to the cache
    first = FeatureSet.load(Settings(root=trained_project).features_dir)
    again = FeatureSet.load(settings.features_dir)
    assert np.array_equal(again.image_features, first.image_features)
    pd.testing.assert_frame_equal(again.products, first.products)


# --- no champion ----------------------------------------------------------------------------------------
def test_predict_without_champion_says_what_to_run(project: Path) -> None:
    with pytest.raises(NoChampionError, match=r"No champion model yet: run `python -m core pipeline`"):
        predict_step(Settings(), workers=1)


# --- a real-format data directory outside the project -------------------------------------------------
STRICT_GATE = "promotion:\n  min_weighted_f1: 1.0\n"  # no model passes: v1 stays a challenger


@pytest.fixture(scope="module")
def outside_data(tmp_path_factory: pytest.TempPathFactory, demo_source: Path) -> Iterator[dict]:
    """A download under the alternative names (X_train.csv, Y_train.csv, X_test.csv) outside the project
    root, given through RAKUTEN_DATA_DIR; one pipeline run with a gate no model passes."""
    base = tmp_path_factory.mktemp("outside")
    data, root = base / "download", base / "project"
    shutil.copytree(demo_source, data)
    for official, renamed in [
        ("X_train_update.csv", "X_train.csv"),
        ("Y_train_CVw08PX.csv", "Y_train.csv"),
        ("X_test_update.csv", "X_test.csv"),
    ]:
        (data / official).rename(data / renamed)
    root.mkdir()
    (root / "params.yaml").write_text(STRICT_GATE, encoding="utf-8")
    before = sorted(str(p.relative_to(data)) for p in data.rglob("*"))
    mp = pytest.MonkeyPatch()
    mp.chdir(root)  # no `.env` of the checkout is read
    mp.setenv("RAKUTEN_ROOT", str(root))
    mp.setenv("RAKUTEN_DATA_DIR", str(data))
    for var in ("MLFLOW_TRACKING_URI", "RAKUTEN_MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAKUTEN_API_URL"):
        mp.delenv(var, raising=False)
    try:
        settings = Settings()
        with pytest.raises(NoChampionError) as refused:
            run_pipeline(settings, load_params(settings.params_file), workers=2)
        yield {"data": data, "root": root, "settings": settings, "error": refused.value, "before": before}
    finally:
        mp.undo()


def test_refused_first_model_explains_how_to_get_a_champion(outside_data: dict) -> None:
    message = str(outside_data["error"])
    assert "Version 1 was registered but not promoted" in message
    assert "weighted F1" in message and "minimum 1.0000" in message  # the gate's reason
    assert "python -m core promote 1" in message


def test_pipeline_reads_a_renamed_download_outside_the_project(outside_data: dict) -> None:
    data, root, settings = outside_data["data"], outside_data["root"], outside_data["settings"]
    assert settings.data_dir == data
    report = load_report(settings.interim_dir)
    assert report is not None
    assert (report.source_dir, report.naming) == (str(data), "renamed")
    assert not (root / "data" / "raw").exists()  # no demo data generated beside a configured folder
    # Raw data is immutable: the download folder holds exactly what it held.
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == outside_data["before"]
    features = FeatureSet.load(settings.features_dir)
    assert features.has_image.any()  # images found under the download's images/ folder

    # Promoted by hand, the challenger predicts the renamed X_test.csv in submission format.
    registry = open_registry(settings)
    assert (registry.champion(), registry.challenger()) == (None, 1)
    registry.promote(1, actor="test", reason="accepted by hand")
    outcome = predict_step(settings, workers=1)
    predictions = pd.read_csv(outcome.predictions, index_col=0)
    assert outcome.version == 1
    assert predictions.index.tolist() == _x_test_ids(data / "X_test.csv")
    assert set(predictions["prdtypecode"]) <= set(CODES)
