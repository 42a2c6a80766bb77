"""The fusion rule of versions registered before stacking: they still load and answer as they did."""

import copyreg
import pickle

import numpy as np
import pytest

from core.models.classifier import ProductClassifier
from core.models.fusion import WeightedFusion, fuse

CLASSES = np.array([10, 40, 50])


def _proba(rng: np.random.Generator, n: int) -> np.ndarray:
    p = rng.random((n, len(CLASSES)))
    return p / p.sum(axis=1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_weight_zero_is_the_text_model(rng: np.random.Generator) -> None:
    p_text, p_image = _proba(rng, 20), _proba(rng, 20)
    fused = fuse(p_text, p_image, np.ones(20, dtype=bool), 0.0)
    assert np.array_equal(fused, p_text)
    assert fused is not p_text  # a copy: callers may change it without touching the text scores


def test_rows_without_image_keep_the_text_probabilities(rng: np.random.Generator) -> None:
    p_text, p_image = _proba(rng, 10), _proba(rng, 10)
    has_image = np.arange(10) % 2 == 0
    fused = fuse(p_text, p_image, has_image, 0.4)
    assert np.array_equal(fused[~has_image], p_text[~has_image])
    assert np.allclose(fused[has_image], 0.6 * p_text[has_image] + 0.4 * p_image[has_image])
    assert np.allclose(fused.sum(axis=1), 1.0)


def test_weighted_fusion_answers_like_the_old_rule(rng: np.random.Generator) -> None:
    p_text, p_image = _proba(rng, 6), _proba(rng, 6)
    has_text = np.array([True, True, True, True, False, False])
    has_image = np.array([True, False, True, False, True, True])
    out = WeightedFusion(0.3).predict_proba(
        {"tfidf": p_text, "image": p_image}, {"tfidf": has_text, "image": has_image}
    )
    both = has_text & has_image
    assert np.allclose(out[both], 0.7 * p_text[both] + 0.3 * p_image[both])
    assert np.allclose(out[has_text & ~has_image], p_text[has_text & ~has_image])
    assert np.allclose(out[~has_text], p_image[~has_text])  # a photo alone: the image model


class _PickledBeforeStacking:
    """Pickles exactly as a `ProductClassifier` written before stacking did: that class, and a state
    holding `fusion_weight` instead of `fusion`."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        state = {"text": None, "image": None, "encoder": "colour_edge", "fusion_weight": 0.35, "info": {}}
        return (copyreg._reconstructor, (ProductClassifier, object, None), state)


def test_a_classifier_pickled_before_stacking_loads_with_its_weight() -> None:
    back = pickle.loads(pickle.dumps(_PickledBeforeStacking()))
    assert isinstance(back, ProductClassifier)
    assert back.fusion == WeightedFusion(0.35) and not hasattr(back, "fusion_weight")
    assert back.fusion.keys == [("tfidf",), ("tfidf", "image")]
    assert back.encoder == "colour_edge"
