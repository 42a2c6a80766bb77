"""Training: views cross-fitted on every non-hold-out row, calibrated, stacked — and no row's own label
ever reaches the out-of-fold probabilities it is fitted on."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold

import core.models.train as train_module
from core.features.build import FeatureSet
from core.features.text import model_text
from core.models.holdout import TrainingDataError
from core.models.image import ImageModel
from core.models.train import FILES, TrainResult, train
from core.params import ImageParams, Params, SplitParams
from tests.core.models.test_text_model import products


def test_image_model_columns_follow_the_given_classes() -> None:
    rng = np.random.default_rng(0)
    classes = np.array([10, 40, 50, 60])
    y = np.array([10, 50, 60] * 20)  # class 40 has no image at all
    features = rng.normal(size=(len(y), 8)) + np.searchsorted(classes, y)[:, None]
    model = ImageModel(ImageParams(), classes, seed=0).fit(features, y)
    proba = model.predict_proba(features)
    assert proba.shape == (len(y), 4)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert (proba[:, 1] < 1e-6).all()  # column of 40: never seen in images
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
            "productid": np.arange(n) * 31 + 7,
            "prdtypecode": pd.array(y, dtype="Int64"),
            "title": text["title"],
            "text": text["text"],
            "has_image": has_image,
            "image_path": pd.array([None] * n, dtype="string"),
        },
        index=pd.RangeIndex(n, name="id"),
    )
    return FeatureSet(frame, image_features, "colour_edge")


PARAMS = Params(image=ImageParams(min_rows=20), split=SplitParams(holdout=0.15, folds=4))


def test_train_cross_fits_every_view_and_stacks_them(tmp_path: Path) -> None:
    features = _feature_set(300, image_share=0.8, missing_image_class=60)
    result = train(features, PARAMS, workers=2)
    clf = result.classifier
    assert clf.image is not None
    assert clf.image.classes_.tolist() == clf.classes.tolist() == [60, 1920, 2583, 2585]
    assert clf.fusion.keys == [("tfidf",), ("tfidf", "image")]
    rows = result.summary["rows"]
    assert rows["train"] + rows["holdout"] == 300 and 20 <= rows["holdout"] <= 70
    assert set(result.split) == {"train", "holdout"}
    assert result.summary["folds"] == 4 and result.summary["image_model"] is True
    oof = result.summary["out_of_fold"]
    assert oof["tfidf_weighted_f1"] > 0.6 and oof["image_weighted_f1"] > 0.6  # both views learned
    assert 0 <= oof["tfidf_ece"] < 0.2 and 0 <= oof["image_ece"] < 0.2  # and are calibrated
    assert result.out_of_fold is not None and len(result.out_of_fold.labels) == rows["train"]
    # Saved and loaded back, the model answers the same.
    result.save(tmp_path / "candidate")
    assert (tmp_path / "candidate" / FILES["oof"]).is_file()
    back = TrainResult.load(tmp_path / "candidate")
    part = features.rows(result.split.index[result.split == "holdout"])
    assert np.allclose(
        back.classifier.proba_from_features(part.products, part.image_features, part.has_image),
        clf.proba_from_features(part.products, part.image_features, part.has_image),
    )
    assert back.split.equals(result.split.rename("part"))
    # The hold-out's text scores kept from training are the shipped model's own.
    kept = result.text_scores["holdout"].for_rows(part.products.index)
    assert kept is not None and np.allclose(kept, clf.text.decision_function(part.products))


def test_too_few_images_trains_text_only() -> None:
    features = _feature_set(200, image_share=0.2)
    result = train(features, Params(split=SplitParams(folds=3)))  # min_rows 100 > ~32 training images
    assert result.classifier.image is None
    assert result.classifier.fusion.keys == [("tfidf",)]
    assert result.summary["image_model"] is False


def test_a_class_too_small_to_cross_fit_is_a_training_data_error() -> None:
    features = _feature_set(200, image_share=0.0)
    codes = features.products["prdtypecode"].to_numpy().copy()
    codes[:1] = 1180  # one product of a class: it cannot be cross-fitted
    features.products["prdtypecode"] = pd.array(codes, dtype="Int64")
    with pytest.raises(TrainingDataError, match="1180"):
        train(features, Params())


def _memorisable(n: int, seed: int) -> FeatureSet:
    """Products whose every word is unique to them and whose labels are random: a model can learn its
    training rows by heart and nothing else."""
    rng = np.random.default_rng(seed)
    y = rng.choice([10, 40, 50, 60], size=n)
    titles = [f"item{i}x unique{i}y" for i in range(n)]
    frame = pd.DataFrame(
        {
            "split": "train",
            "productid": np.arange(n),
            "prdtypecode": pd.array(y, dtype="Int64"),
            "title": titles,
            "text": titles,
            "has_image": True,
            "image_path": pd.array([None] * n, dtype="string"),
        },
        index=pd.RangeIndex(n, name="id"),
    )
    image_features = rng.normal(size=(n, 40)).astype(np.float32)  # unique noise: memorisable too
    return FeatureSet(frame, image_features, "colour_edge")


LEAK_PARAMS = Params(
    split=SplitParams(holdout=0.1, folds=4),
    image=ImageParams(min_rows=20, C=100.0),
    text=Params().text.model_copy(update={"word_min_df": 1, "char_min_df": 1}),
)


def test_stacking_never_sees_a_rows_own_label_through_its_probabilities() -> None:
    features = _memorisable(400, seed=0)
    result = train(features, LEAK_PARAMS)
    fit = features.rows(result.split.index[result.split == "train"])
    # The shipped models learned their training rows by heart (so a leak would show) ...
    text_in_sample = (
        result.classifier.classes[result.classifier.text.decision_function(fit.products).argmax(1)]
        == fit.labels
    ).mean()
    assert text_in_sample > 0.95
    # ... yet the out-of-fold probabilities stacking is fitted on know nothing of the labels: chance level.
    oof = result.out_of_fold
    assert oof is not None
    for view in ("tfidf", "image"):
        accuracy = (oof.classes[oof.probas[view].argmax(1)] == oof.labels).mean()
        assert accuracy < 0.4, view  # chance is 0.25
    fused = result.classifier.fusion.predict_proba(oof.probas, oof.available)
    assert (oof.classes[fused.argmax(1)] == oof.labels).mean() < 0.4


def test_changing_one_rows_label_leaves_its_out_of_fold_answer_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Folds that do not depend on the labels, so that changing one label changes nothing else.
    monkeypatch.setattr(
        train_module, "folds", lambda y, n, seed: list(KFold(n, shuffle=True, random_state=seed).split(y))
    )
    features = _feature_set(240, image_share=1.0)
    first = train(features, PARAMS)
    oof = first.out_of_fold
    assert oof is not None
    row = 5
    changed = features.products["prdtypecode"].to_numpy().copy()
    at = int(np.flatnonzero(features.products.index == oof.ids[row])[0])
    changed[at] = next(c for c in oof.classes if c != changed[at])
    altered = FeatureSet(
        features.products.assign(prdtypecode=pd.array(changed, dtype="Int64")),
        features.image_features,
        "colour_edge",
    )
    second = train(altered, PARAMS)
    assert second.out_of_fold is not None and np.array_equal(second.out_of_fold.ids, oof.ids)
    for view in ("tfidf", "image"):
        a, b = (np.log(r.out_of_fold.probas[view][row]) for r in (first, second))  # type: ignore[union-attr]
        a, b = a - a.mean(), b - b.mean()  # scores up to the (refitted) temperature
        assert np.allclose(a / np.linalg.norm(a), b / np.linalg.norm(b), atol=1e-6), view


def test_load_without_a_trained_model_says_what_to_run(tmp_path: Path) -> None:
    from core.errors import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="python -m core train"):
        TrainResult.load(tmp_path)


def test_a_folder_trained_before_plain_pickles_still_names_its_joblib_file(tmp_path: Path) -> None:
    from core.models.train import FILES, classifier_file

    assert classifier_file(tmp_path) == tmp_path / FILES["classifier"]  # nothing there yet: the new name
    (tmp_path / "classifier.joblib").write_bytes(b"")
    assert classifier_file(tmp_path) == tmp_path / "classifier.joblib"
    (tmp_path / FILES["classifier"]).write_bytes(b"")
    assert classifier_file(tmp_path) == tmp_path / FILES["classifier"]
