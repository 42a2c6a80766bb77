"""Training: a stratified, reproducible split; the image model shares the text model's classes."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.features.build import FeatureSet
from core.features.text import model_text
from core.models.image import ImageModel
from core.models.train import TrainingDataError, TrainResult, split_rows, train
from core.params import ImageParams, Params, SplitParams
from tests.core.models.test_text_model import products

SPLIT = SplitParams(validation_size=0.1, test_size=0.1)


def _labels(per_class: dict[int, int], first_id: int = 1000) -> pd.Series:
    codes = [code for code, n in per_class.items() for _ in range(n)]
    return pd.Series(codes, index=pd.RangeIndex(first_id, first_id + len(codes), name="id"))


def test_split_is_stratified_and_sized() -> None:
    labels = _labels({10: 100, 40: 50, 2583: 200, 1280: 30})
    part = split_rows(labels, SPLIT, seed=0)
    assert part.index.equals(labels.index)
    assert set(part) == {"train", "validation", "test"}
    sizes = part.value_counts()
    assert sizes["validation"] == pytest.approx(0.1 * len(labels), abs=2)
    assert sizes["test"] == pytest.approx(0.1 * len(labels), abs=2)
    # Every class keeps its share in every part (within one row).
    for name in ("train", "validation", "test"):
        shares = labels[part == name].value_counts()
        expected = labels.value_counts() * sizes[name] / len(labels)
        assert (shares.reindex(expected.index, fill_value=0) - expected).abs().max() <= 1.5, name


def test_split_parts_are_disjoint_and_cover_every_row() -> None:
    labels = _labels({10: 40, 40: 40, 50: 40})
    part = split_rows(labels, SPLIT, seed=1)
    ids = {name: set(part.index[part == name]) for name in ("train", "validation", "test")}
    assert not ids["train"] & ids["validation"]
    assert not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    assert set().union(*ids.values()) == set(labels.index)


def test_split_is_fixed_by_the_seed() -> None:
    labels = _labels({10: 60, 40: 60, 50: 60})
    first = split_rows(labels, SPLIT, seed=42)
    assert first.equals(split_rows(labels, SPLIT, seed=42))
    assert not first.equals(split_rows(labels, SPLIT, seed=43))


def test_class_with_fewer_than_three_rows_is_refused() -> None:
    labels = _labels({10: 50, 40: 50, 1180: 2})
    with pytest.raises(TrainingDataError, match=r"1 classes have fewer than 3.*1180.*RAKUTEN_DEMO_ROWS"):
        split_rows(labels, SPLIT, seed=0)


def test_too_few_rows_for_the_hold_out_is_a_training_data_error() -> None:
    # Three rows per class, but a 20 % hold-out of 30 rows cannot hold each of 10 classes.
    labels = _labels(dict.fromkeys(range(10, 20), 3))
    with pytest.raises(TrainingDataError, match="too few"):
        split_rows(labels, SPLIT, seed=0)


def test_image_model_columns_follow_the_given_classes() -> None:
    rng = np.random.default_rng(0)
    classes = np.array([10, 40, 50, 60])
    y = np.array([10, 50, 60] * 20)  # class 40 has no image at all
    features = rng.normal(size=(len(y), 8)) + np.searchsorted(classes, y)[:, None]
    model = ImageModel(ImageParams(), classes, seed=0).fit(features, y)
    proba = model.predict_proba(features)
    assert proba.shape == (len(y), 4)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert (proba[:, 1] == 0).all()  # column of 40: never seen in images
    assert (classes[proba.argmax(1)] == y).mean() > 0.9  # columns are not shifted
    assert model.predict_proba(features[:0]).shape == (0, 4)


def _feature_set(n: int, *, image_share: float, missing_image_class: int | None = None) -> FeatureSet:
    raw, y = products(n, seed=5)
    text = model_text(raw)
    rng = np.random.default_rng(5)
    has_image = rng.random(n) < image_share
    if missing_image_class is not None:
        has_image &= y != missing_image_class
    codes = np.unique(y)
    image_features = rng.normal(size=(n, 6)).astype(np.float32) + np.searchsorted(codes, y)[:, None]
    image_features[~has_image] = 0
    frame = pd.DataFrame(
        {
            "split": "train",
            "prdtypecode": pd.array(y, dtype="Int64"),
            "title": text["title"],
            "text": text["text"],
            "has_image": has_image,
            "image_path": pd.array([None] * n, dtype="string"),
        },
        index=pd.RangeIndex(n, name="id"),
    )
    return FeatureSet(frame, image_features, "colour_edge")


def test_train_aligns_the_image_model_with_the_text_classes(tmp_path: Path) -> None:
    features = _feature_set(300, image_share=0.8, missing_image_class=60)
    params = Params(image=ImageParams(min_rows=20))
    result = train(features, params)
    clf = result.classifier
    assert clf.image is not None
    assert clf.image.classes_.tolist() == clf.classes.tolist() == [60, 1920, 2583, 2585]
    assert 0.0 <= clf.fusion_weight <= 1.0
    assert result.summary["rows"] == {"train": 240, "validation": 30, "test": 30}
    assert result.summary["image_model"] is True
    assert set(result.split) == {"train", "validation", "test"}
    # Saved and loaded back, the model answers the same.
    result.save(tmp_path / "candidate")
    back = TrainResult.load(tmp_path / "candidate")
    part = features.rows(result.split.index[result.split == "test"])
    assert np.allclose(
        back.classifier.proba_from_features(part.products, part.image_features, part.has_image),
        clf.proba_from_features(part.products, part.image_features, part.has_image),
    )
    assert back.split.equals(result.split.rename("part"))


def test_too_few_images_trains_text_only() -> None:
    features = _feature_set(200, image_share=0.2)
    result = train(features, Params())  # min_rows 100 > ~32 training images
    assert result.classifier.image is None
    assert result.classifier.fusion_weight == 0.0
    assert result.summary["image_model"] is False


def test_load_without_a_trained_model_says_what_to_run(tmp_path: Path) -> None:
    from core.errors import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="python -m core train"):
        TrainResult.load(tmp_path)
