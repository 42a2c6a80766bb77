"""The photo guard: a conformal nearest-neighbour test of photos against the training photos."""

import numpy as np
import pytest

from core.models.novelty import NoveltyGuard
from core.params import NoveltyParams


def _cluster(rng: np.random.Generator, n: int, centre: np.ndarray) -> np.ndarray:
    return (centre + rng.normal(scale=0.3, size=(n, len(centre)))).astype(np.float32)


def test_familiar_photos_are_rarely_set_aside_and_unlike_ones_always() -> None:
    rng = np.random.default_rng(0)
    here = np.concatenate([np.abs(rng.normal(size=16)) + 1, np.zeros(16)])  # another kind of photo:
    elsewhere = here[::-1].copy()  # other features light up
    guard = NoveltyGuard.fit(_cluster(rng, 1500, here), NoveltyParams(quantile=0.99, k=3), seed=0)
    assert guard is not None
    fresh = guard.unfamiliar(guard.distance(_cluster(rng, 4000, here))).mean()
    assert 0.002 < fresh < 0.02  # ≈ 1 − quantile: the conformal guarantee, not a tuned number
    assert guard.unfamiliar(guard.distance(_cluster(rng, 200, elsewhere))).all()


def test_the_quantile_sets_how_many_familiar_photos_are_set_aside() -> None:
    rng = np.random.default_rng(1)
    centre = np.abs(rng.normal(size=16))
    train, fresh = _cluster(rng, 1000, centre), _cluster(rng, 4000, centre)
    rates = []
    for quantile in (0.8, 0.95):
        guard = NoveltyGuard.fit(train, NoveltyParams(quantile=quantile, k=3), seed=0)
        assert guard is not None
        rates.append(guard.unfamiliar(guard.distance(fresh)).mean())
    assert rates[0] == pytest.approx(0.2, abs=0.04)
    assert rates[1] == pytest.approx(0.05, abs=0.02)


def test_the_reference_is_a_bounded_sample_and_scale_does_not_matter() -> None:
    rng = np.random.default_rng(2)
    train = _cluster(rng, 600, np.ones(8))
    guard = NoveltyGuard.fit(train, NoveltyParams(max_reference=100, k=3), seed=0)
    assert guard is not None and guard.reference == 100
    assert guard.describe()["reference_photos"] == 100
    # features are compared by direction (normalised), as deep features are: a brighter copy is no further
    assert np.allclose(guard.distance(train[:5]), guard.distance(train[:5] * 3.0), atol=1e-5)


def test_too_few_photos_give_no_guard() -> None:
    assert NoveltyGuard.fit(np.ones((4, 8), dtype=np.float32), NoveltyParams(k=3)) is None
    assert NoveltyGuard.fit(np.zeros((0, 8), dtype=np.float32), NoveltyParams(k=3)) is None
