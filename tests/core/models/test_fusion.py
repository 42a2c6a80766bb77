"""Late fusion: the weight moves only rows that have an image, and the validation search picks the best."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from core.models.fusion import choose_weight, fuse

CLASSES = np.array([10, 40, 50])


def _proba(rng: np.random.Generator, n: int) -> np.ndarray:
    p = rng.random((n, len(CLASSES)))
    return p / p.sum(axis=1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_weight_zero_is_the_text_model(rng: np.random.Generator) -> None:
    p_text, p_image = _proba(rng, 20), _proba(rng, 20)
    has_image = np.ones(20, dtype=bool)
    fused = fuse(p_text, p_image, has_image, 0.0)
    assert np.array_equal(fused, p_text)
    assert fused is not p_text  # a copy: callers may change it without touching the text scores


def test_no_image_model_is_the_text_model(rng: np.random.Generator) -> None:
    p_text = _proba(rng, 5)
    assert np.array_equal(fuse(p_text, None, np.ones(5, dtype=bool), 0.7), p_text)


def test_rows_without_image_keep_the_text_probabilities(rng: np.random.Generator) -> None:
    p_text, p_image = _proba(rng, 10), _proba(rng, 10)
    has_image = np.arange(10) % 2 == 0
    fused = fuse(p_text, p_image, has_image, 0.4)
    assert np.array_equal(fused[~has_image], p_text[~has_image])
    assert np.allclose(fused[has_image], 0.6 * p_text[has_image] + 0.4 * p_image[has_image])
    assert np.allclose(fused.sum(axis=1), 1.0)


def test_weight_one_is_the_image_model_where_there_is_an_image(rng: np.random.Generator) -> None:
    p_text, p_image = _proba(rng, 6), _proba(rng, 6)
    has_image = np.array([True, False] * 3)
    fused = fuse(p_text, p_image, has_image, 1.0)
    assert np.allclose(fused[has_image], p_image[has_image])


def test_choose_weight_prefers_the_image_when_it_is_right(rng: np.random.Generator) -> None:
    n = 60
    y = CLASSES[rng.integers(0, 3, n)]
    truth = np.eye(3)[np.searchsorted(CLASSES, y)]
    has_image = np.ones(n, dtype=bool)
    # Text is right on half the rows, and then only narrowly; the image is always right.
    p_text = 0.5 * _proba(rng, n) + 0.5 * np.where(np.arange(n)[:, None] % 2 == 0, truth, 1 - truth) / 2
    p_image = 0.6 * truth + 0.4 / 3
    weight, scores = choose_weight(p_text, p_image, has_image, y, CLASSES, step=0.1)
    assert weight == max(scores, key=lambda w: scores[w])
    assert weight > 0 and scores[weight] == 1.0
    assert sorted(scores) == pytest.approx([round(0.1 * i, 1) for i in range(11)])
    expected = f1_score(y, CLASSES[fuse(p_text, p_image, has_image, weight).argmax(1)], average="weighted")
    assert scores[weight] == pytest.approx(expected)


def test_choose_weight_ignores_a_useless_image_model(rng: np.random.Generator) -> None:
    n = 60
    y = CLASSES[rng.integers(0, 3, n)]
    truth = np.eye(3)[np.searchsorted(CLASSES, y)]
    p_text = 0.7 * truth + 0.1  # always right
    p_image = np.roll(truth, 1, axis=1) * 0.9 + 0.1 / 3  # always wrong, confidently
    weight, scores = choose_weight(p_text, p_image, np.ones(n, dtype=bool), y, CLASSES)
    assert weight == 0.0 and scores[0.0] == 1.0


def test_ties_go_to_the_smaller_weight(rng: np.random.Generator) -> None:
    y = np.array([10, 40, 50])
    p = np.eye(3)
    weight, scores = choose_weight(p, p.copy(), np.ones(3, dtype=bool), y, CLASSES, step=0.25)
    assert set(scores.values()) == {1.0}
    assert weight == 0.0


def test_no_image_anywhere_gives_weight_zero(rng: np.random.Generator) -> None:
    y = CLASSES[rng.integers(0, 3, 12)]
    p_text = _proba(rng, 12)
    for p_image, has_image in ((None, np.ones(12, dtype=bool)), (_proba(rng, 12), np.zeros(12, dtype=bool))):
        weight, scores = choose_weight(p_text, p_image, has_image, y, CLASSES)
        assert weight == 0.0 and list(scores) == [0.0]
