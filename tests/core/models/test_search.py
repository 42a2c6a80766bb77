"""Hyper-parameters by cross-validation: the best mean score wins, ties go to the smaller C."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from core.models.search import FOLDS, PATIENCE, candidates, search_c, search_path, stop_early


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


def test_a_path_stops_once_its_best_is_behind_it() -> None:
    assert not stop_early([1.0, 2.0, 3.0])
    assert not stop_early([3.0, 2.0])  # one drop: not yet
    assert stop_early([1.0, 3.0, 2.0, 2.5])
    assert not stop_early([1.0, 3.0, 2.0, 3.0])  # back to its best: the path goes on


def _path_scores(curve: dict[float, float], calls: list[float]):  # type: ignore[no-untyped-def]
    def path(cs: list[float], fit_at: np.ndarray, held_at: np.ndarray) -> list[float]:
        scores: list[float] = []
        for c in cs:
            calls.append(c)
            scores.append(curve[c])
            if stop_early(scores):
                break
        return scores

    return path


def test_a_path_search_skips_the_candidates_past_the_peak() -> None:
    curve = {0.001: -3.0, 0.01: -2.0, 0.1: -2.5, 1.0: -2.9, 10.0: -3.5, 100.0: -4.0}
    calls: list[float] = []
    y = np.repeat([1, 2, 3], 100)
    found = search_path("path", list(curve), y, _path_scores(curve, calls), metric="x", seed=0)
    assert found.best == 0.01
    assert sorted(found.scores) == [0.001, 0.01, 0.1, 1.0]  # 1 + best + PATIENCE candidates reached
    assert sorted(set(calls)) == sorted(found.scores) and len(calls) == FOLDS * (2 + PATIENCE)


def test_a_path_search_agrees_with_the_full_search_on_real_fits() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 900)
    x = np.eye(3)[y] * 0.6 + rng.normal(size=(900, 3))
    grid = [0.0001, 0.001, 0.01, 0.1, 1.0]
    full = search_c("full", grid, y, _log_loss_score(x, y), metric="-log loss", seed=0)

    def path(cs: list[float], fit_at: np.ndarray, held_at: np.ndarray) -> list[float]:
        model = LogisticRegression(max_iter=300, warm_start=True)
        scores: list[float] = []
        for c in cs:
            model.set_params(C=c).fit(x[fit_at], y[fit_at])
            scores.append(-log_loss(y[held_at], model.predict_proba(x[held_at]), labels=model.classes_))
            if stop_early(scores):
                break
        return scores

    walked = search_path("path", grid, y, path, metric="-log loss", seed=0, workers=2)
    assert walked.best == full.best
    for c, score in walked.scores.items():
        assert score == pytest.approx(full.scores[c], abs=1e-3)
