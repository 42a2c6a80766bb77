"""Stacked fusion: a meta-model per set of answering views, photos handled explicitly, C chosen by CV."""

import numpy as np
import pytest
from scipy.special import softmax

from core.models.stacking import StackedFusion, fit_stacking

CLASSES = np.array([10, 40, 50, 60])
VIEWS = ("tfidf", "image")


def _views(
    rng: np.random.Generator, n: int, *, text_strength: float, image_strength: float
) -> tuple[dict, np.ndarray]:
    """Probabilities of two views whose evidence for the true class is independent and graded (each
    view's logits: `strength` on the true class plus noise), so combining them adds evidence."""
    y = CLASSES[rng.integers(0, len(CLASSES), n)]
    truth = np.eye(len(CLASSES))[np.searchsorted(CLASSES, y)]

    def view(strength: float) -> np.ndarray:
        logits = strength * truth + rng.normal(size=truth.shape)
        return softmax(logits, axis=1)

    return {"tfidf": view(text_strength), "image": view(image_strength)}, y


def _fit(probas: dict, y: np.ndarray, has_image: np.ndarray, **kw) -> StackedFusion:  # type: ignore[no-untyped-def]
    available = {"tfidf": np.ones(len(y), dtype=bool), "image": has_image}
    return fit_stacking(
        CLASSES,
        VIEWS,
        probas,
        available,
        y,
        keys=[("tfidf",), ("tfidf", "image")],
        Cs=[0.1, 1.0],
        min_rows=50,
        seed=0,
        **kw,
    )


def test_two_complementary_views_beat_each_alone() -> None:
    rng = np.random.default_rng(0)
    probas, y = _views(rng, 3000, text_strength=1.5, image_strength=1.2)
    has_image = np.ones(len(y), dtype=bool)
    fusion = _fit(probas, y, has_image)
    assert fusion.keys == [("tfidf",), ("tfidf", "image")]
    test, y_test = _views(np.random.default_rng(1), 2000, text_strength=1.5, image_strength=1.2)
    fused = fusion.predict_proba(test, {"tfidf": np.ones(2000, bool), "image": np.ones(2000, bool)})
    accuracy = {name: (CLASSES[p.argmax(1)] == y_test).mean() for name, p in {**test, "fused": fused}.items()}
    assert accuracy["fused"] > accuracy["tfidf"] + 0.05 and accuracy["fused"] > accuracy["image"] + 0.05
    assert np.allclose(fused.sum(axis=1), 1.0)


def test_rows_are_scored_by_the_views_that_answered_them() -> None:
    rng = np.random.default_rng(2)
    probas, y = _views(rng, 2000, text_strength=1.5, image_strength=1.2)
    fusion = _fit(probas, y, rng.random(2000) < 0.5)
    test, _ = _views(np.random.default_rng(3), 6, text_strength=1.5, image_strength=1.2)
    has_text = np.array([True, True, True, True, False, False])
    has_image = np.array([True, True, False, False, True, True])
    fused = fusion.predict_proba(test, {"tfidf": has_text, "image": has_image})
    both = fusion.predict_proba(test, {"tfidf": np.ones(6, bool), "image": np.ones(6, bool)})
    text_only = fusion.predict_proba(
        {"tfidf": test["tfidf"], "image": None}, {"tfidf": np.ones(6, bool), "image": np.zeros(6, bool)}
    )
    assert np.allclose(fused[:2], both[:2])  # title + photo: the text+image meta-model
    assert np.allclose(fused[2:4], text_only[2:4])  # no photo: the text meta-model
    assert np.allclose(fused[4:], test["image"][4:])  # a photo alone: the (calibrated) image view
    with pytest.raises(ValueError, match="no view"):
        fusion.predict_proba(test, {"tfidf": np.zeros(6, bool), "image": np.zeros(6, bool)})


def test_too_few_rows_with_a_photo_skip_the_image_meta_model() -> None:
    rng = np.random.default_rng(4)
    probas, y = _views(rng, 1000, text_strength=1.5, image_strength=1.2)
    has_image = np.zeros(1000, dtype=bool)
    has_image[:20] = True
    fusion = _fit(probas, y, has_image)
    assert fusion.keys == [("tfidf",)]
    assert fusion.key_for(("tfidf", "image")) == ("tfidf",)  # photos then fall back to the text model


def test_the_pool_weighs_each_view_by_what_it_knows() -> None:
    """A view of pure noise gets (almost) no weight, the informative one the most; and the class biases
    learn the class shares the views do not know."""
    from core.models.stacking import LogLinearPool, meta_features

    rng = np.random.default_rng(2)
    probas, y = _views(rng, 4000, text_strength=2.0, image_strength=0.0)  # "image" knows nothing
    pool = LogLinearPool(1.0, CLASSES).fit(meta_features([probas["tfidf"], probas["image"]]), y)
    text_weight, noise_weight = pool.weights
    assert text_weight > 0.5 and abs(noise_weight) < 0.1 * text_weight
    skewed = np.r_[np.full(3000, CLASSES[0]), CLASSES[rng.integers(1, len(CLASSES), 1000)]]
    flat = np.full((len(skewed), len(CLASSES)), 1 / len(CLASSES))
    prior = (
        LogLinearPool(1.0, CLASSES).fit(meta_features([flat]), skewed).predict_proba(meta_features([flat]))
    )
    assert prior[0, 0] == pytest.approx(0.75, abs=0.02)
