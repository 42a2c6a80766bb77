"""The pipeline with the pretrained image encoder (the `vision` extra) end to end: features from the
network, every view cross-fitted and stacked, the champion answering a photo through the serving path —
and, without the extra, an error that names the install command."""

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.config import Settings, get_settings
from core.data.demo.generator import DemoSpec, write_demo
from core.features.build import FeatureSet
from core.features.image import get_encoder
from core.features.pretrained import INSTALL, vision_installed
from core.params import load_params
from core.pipeline import Layout, run_pipeline
from core.serving.predictor import ImageLimits, Product, predict
from core.tracking import store
from tests.conftest import clean_env, own_mlflow_env

PARAMS = """\
image:
  encoder: efficientnet_lite0
  min_rows: 50
fusion:
  min_rows: 50
split:
  folds: 3
promotion:               # this test is about the encoder's path, not the gate: 600 products are few
  min_behaviour_pass_rate: 0.5
"""


@pytest.fixture(scope="module")
def vision_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not vision_installed():
        message = f"the vision extra is not installed ({INSTALL})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("vision") / "project"
    write_demo(root / "data" / "raw", DemoSpec(rows=600, seed=3), workers=2)
    (root / "params.yaml").write_text(PARAMS, encoding="utf-8")
    mp = pytest.MonkeyPatch()
    try:
        clean_env(mp, root)
        mp.chdir(root)
        with own_mlflow_env():
            settings = Settings(root=root)
            run_pipeline(settings, load_params(settings.params_file), workers=2)
        yield root
    finally:
        mp.undo()
        get_settings.cache_clear()


def test_features_come_from_the_pretrained_network(vision_project: Path) -> None:
    features = FeatureSet.load(Layout.of(Settings(root=vision_project)).features)
    assert features.encoder == "efficientnet_lite0"
    assert features.image_features.shape[1] == 1280 and features.has_image.sum() > 400
    store_dir = vision_project / "data" / "cache" / "image_features" / "efficientnet_lite0-v1"
    assert sorted(p.name for p in store_dir.iterdir()) == ["features.npy", "keys.npy"]


def test_every_view_is_trained_scored_and_calibrated(vision_project: Path) -> None:
    summary = json.loads((vision_project / "models/candidate/training.json").read_text(encoding="utf-8"))
    assert summary["encoder"] == "efficientnet_lite0" and summary["folds"] == 3
    assert set(summary["fusion"]) == {"tfidf", "tfidf+image"}
    assert set(summary["temperature"]) == {"tfidf", "image"}
    assert {"text.C", "image.C"} <= set(summary["search"])
    metrics = json.loads((vision_project / "reports/evaluation/metrics.json").read_text(encoding="utf-8"))
    chance = 1 / 27
    assert metrics["image_weighted_f1"] > 3 * chance  # the photos say something about the class
    assert 0 <= metrics["image_ece"] < 0.25 and 0 <= metrics["ece"] < 0.25
    assert (vision_project / "reports/evaluation/figures/calibration.png").is_file()


def test_the_champion_answers_a_photo_with_both_views(vision_project: Path) -> None:
    settings = Settings(root=vision_project)
    with own_mlflow_env():
        champion = store.load_classifier(settings, alias="champion")
    assert champion.encoder == "efficientnet_lite0"
    photo = next((vision_project / "data/raw/images/image_test").glob("*.jpg")).read_bytes()
    answers = predict(
        champion,
        [Product("Piscine tubulaire hors sol", "", photo), Product(None, "", photo), Product("Piscine", "")],
        ImageLimits.of(settings),
        k=3,
    )
    assert [a.modalities for a in answers] == [("text", "image"), ("image",), ("text",)]
    for answer in answers:
        assert 0 < answer.probability <= 1 and len(answer.top_k) == 3
        assert sum(r.probability for r in answer.top_k) <= 1 + 1e-9


def test_without_the_extra_training_stops_with_the_install_command(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    get_encoder.cache_clear()
    try:
        (project / "params.yaml").write_text(PARAMS, encoding="utf-8")
        assert CliRunner().invoke(app, ["demo-data", "--rows", "120", "--seed", "4"]).exit_code == 0
        assert CliRunner().invoke(app, ["ingest"]).exit_code == 0
        result = CliRunner().invoke(app, ["features"])
    finally:
        get_encoder.cache_clear()
    assert result.exit_code == 2, result.output
    assert "make install-vision" in result.output and "efficientnet_lite0" in result.output
    assert not (project / "data" / "processed" / "features" / "meta.json").exists()  # nothing half-written
