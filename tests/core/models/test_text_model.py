"""The text model: fits on normalized title/text, and its temperature calibration only rescales scores."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from core.features.text import model_text
from core.models.text import TextModel
from core.params import TextParams

CODES = (2583, 2585, 60, 1920)
WORDS = {
    2583: ["piscine", "spa", "filtration", "bache", "liner"],
    2585: ["perceuse", "visseuse", "scie", "ponceuse", "batterie"],
    60: ["console", "manette", "portable", "ecran", "jeux"],
    1920: ["coussin", "housse", "plaid", "rideau", "lin"],
}
SHARED = ["neuf", "lot", "noir", "blanc", "grand", "livraison", "qualite", "original"]


def products(n: int, seed: int, *, noise: float = 0.25) -> tuple[pd.DataFrame, np.ndarray]:
    """Raw products whose words mostly, not always, come from their class (so scores overlap)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(CODES, size=n)
    rows = []
    for code in y:

        def word(own: int = int(code)) -> str:
            source = WORDS[int(rng.choice(CODES))] if rng.random() < noise else WORDS[own]
            return str(rng.choice(source + SHARED))

        title = " ".join(word().capitalize() for _ in range(3))
        description = "" if rng.random() < 0.35 else "<p>" + " ".join(word() for _ in range(6)) + "</p>"
        rows.append((title, description))
    return pd.DataFrame(rows, columns=["designation", "description"]), y


@pytest.fixture(scope="module")
def fitted() -> tuple[TextModel, pd.DataFrame, np.ndarray]:
    raw, y = products(400, seed=0)
    model = TextModel(TextParams(), seed=0).fit(model_text(raw), y)
    val_raw, val_y = products(200, seed=1)
    return model, model_text(val_raw), val_y


def test_classes_and_probabilities(fitted: tuple[TextModel, pd.DataFrame, np.ndarray]) -> None:
    model, val, _ = fitted
    assert model.classes_.tolist() == sorted(CODES)
    proba = model.predict_proba(val)
    assert proba.shape == (len(val), len(CODES))
    assert np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all()
    assert model.n_features > 0


def test_learns_the_class_words(fitted: tuple[TextModel, pd.DataFrame, np.ndarray]) -> None:
    model, val, y = fitted
    accuracy = (model.classes_[model.predict_proba(val).argmax(1)] == y).mean()
    assert accuracy > 0.6  # chance is 0.25; shared words and noise cap it
    clear = model_text(pd.DataFrame({"designation": ["Perceuse visseuse"], "description": [""]}))
    assert model.classes_[model.predict_proba(clear).argmax(1)][0] == 2585


def test_calibration_lowers_log_loss_and_keeps_the_ranking(
    fitted: tuple[TextModel, pd.DataFrame, np.ndarray],
) -> None:
    model, val, y = fitted
    model.temperature = 1.0
    before = model.predict_proba(val)
    temperature = model.calibrate(model.decision_function(val), y)
    after = model.predict_proba(val)
    try:
        assert temperature == model.temperature and temperature != 1.0
        assert log_loss(y, after, labels=model.classes_) < log_loss(y, before, labels=model.classes_)
        # One scalar: the order of classes in every row — so every F1 and top-k — is unchanged.
        assert np.array_equal(np.argsort(-before, axis=1), np.argsort(-after, axis=1))
        assert np.array_equal(before.argmax(1), model.decision_function(val).argmax(1))
    finally:
        model.temperature = 1.0


def test_calibration_ignores_labels_the_model_never_saw(
    fitted: tuple[TextModel, pd.DataFrame, np.ndarray],
) -> None:
    model, val, y = fitted
    unknown = y.copy()
    unknown[:10] = 9999  # a code absent from training must not crash or skew the fit
    try:
        scores = model.decision_function(val)
        with_unknown = model.calibrate(scores, unknown)
        without = model.calibrate(scores[10:], y[10:])
        assert with_unknown == pytest.approx(without, rel=1e-3)
    finally:
        model.temperature = 1.0


def test_cross_fitting_pieces_score_like_the_fitted_pipeline(
    fitted: tuple[TextModel, pd.DataFrame, np.ndarray],
) -> None:
    model, val, _ = fitted
    raw, y = products(400, seed=0)
    twin = TextModel(TextParams(), seed=0)
    matrix = twin.fit_vectorizers(model_text(raw))
    twin.set_svm(twin.new_svm().fit(matrix, y))  # what the train step does with the shipped SVM
    assert np.allclose(twin.decision_function(val), model.decision_function(val))
    assert np.allclose(
        twin.margins(twin.pipeline.named_steps["svm"], twin.transform(val)), model.decision_function(val)
    )
    assert twin.new_svm() is not twin.pipeline.named_steps["svm"] and not hasattr(twin.new_svm(), "coef_")


def test_title_features_can_be_switched_off() -> None:
    raw, y = products(120, seed=3)
    with_title = TextModel(TextParams()).fit(model_text(raw), y)
    without = TextModel(TextParams(title_features=False)).fit(model_text(raw), y)
    names = [name for name, _, _ in without.pipeline.named_steps["features"].transformers_]
    assert "title" not in names
    assert without.n_features < with_title.n_features
