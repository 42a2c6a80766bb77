"""Hyper-parameters by cross-validation: the best mean score wins, ties go to the smaller C."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from core.models.search import FOLDS, candidates, search_c


def _log_loss_score(x: np.ndarray, y: np.ndarray):  # type: ignore[no-untyped-def]
    def score(c: float, fit_at: np.ndarray, held_at: np.ndarray) -> float:
        model = LogisticRegression(C=c, max_iter=300).fit(x[fit_at], y[fit_at])
        return -log_loss(y[held_at], model.predict_proba(x[held_at]), labels=model.classes_)

    return score


def test_pure_noise_picks_the_strongest_regularisation() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(1500, 8)), rng.integers(0, 3, 1500)
    found = search_c("noise", [100.0, 0.001, 1.0], y, _log_loss_score(x, y), metric="-log loss", seed=0)
    assert found.best == 0.001 and sorted(found.scores) == [0.001, 1.0, 100.0]


def test_a_strong_signal_picks_little_regularisation() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 1500)
    x = np.eye(3)[y] * 3 + rng.normal(size=(1500, 3))
    found = search_c("signal", [0.001, 1.0], y, _log_loss_score(x, y), metric="-log loss", seed=0, workers=2)
    assert found.best == 1.0
    assert found.to_dict()["metric"] == "-log loss" and set(found.to_dict()["scores"]) == {"0.001", "1"}


def test_one_value_is_used_as_given_without_fitting() -> None:
    def never(c: float, fit_at: np.ndarray, held_at: np.ndarray) -> float:
        raise AssertionError("nothing to search")

    assert search_c("one", 0.5, np.zeros(10), never, metric="x", seed=0).best == 0.5
    assert search_c("one", [0.5], np.zeros(10), never, metric="x", seed=0).best == 0.5


def test_ties_go_to_the_smaller_c_and_rows_are_sampled() -> None:
    seen: list[int] = []

    def flat(c: float, fit_at: np.ndarray, held_at: np.ndarray) -> float:
        seen.append(len(fit_at) + len(held_at))
        return 1.0

    y = np.repeat([1, 2, 3], 400)
    found = search_c("flat", [2.0, 0.5, 1.0], y, flat, metric="x", seed=0, max_rows=300)
    assert found.best == 0.5
    assert len(seen) == 3 * FOLDS and set(seen) == {300}


def test_candidates_accept_one_value_or_a_list() -> None:
    assert candidates(0.5) == [0.5]
    assert candidates([1, 0.25, 1.0]) == [0.25, 1.0]
    with pytest.raises(TypeError):
        candidates(None)  # type: ignore[arg-type]
