"""Cross-fitting the views: each fitted once per fold on the other folds (its out-of-fold answers for
every training row) and once on all of them (shipped), the folds spread over worker processes; and the
scores the hyper-parameter search asks of one fold. Used by `core.models.train`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from joblib import delayed
from scipy import sparse
from sklearn.base import clone
from sklearn.metrics import f1_score, log_loss
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from core.compute.cluster import parallel, reported
from core.features.build import FeatureSet
from core.models.image import ImageModel
from core.models.search import stop_early
from core.models.text import TextModel
from core.progress import StageProgress

if TYPE_CHECKING:
    from distributed import Client

# liblinear draws from the C library's one random state: two fits on threads of one process (a Dask worker
# with several threads) would interleave their draws and not give the same model twice
_LIBLINEAR = threading.Lock()


@dataclass
class DenseView:
    """A view fitted on a dense feature matrix (image features, passage embeddings)."""

    model: ImageModel
    features: np.ndarray
    rows: np.ndarray  # the training rows that have these features
    search_name: str


@dataclass
class CrossFitted:
    text_oof: np.ndarray  # out-of-fold SVM margins, every training row
    dense_oof: dict[str, np.ndarray]  # out-of-fold raw probabilities per dense view (zeros off its rows)
    scored: dict[str, np.ndarray]  # the shipped SVM's margins of the `to_score` frames


def cross_fit(
    text: TextModel,
    matrix: sparse.csr_matrix,
    dense: dict[str, DenseView],
    fit: FeatureSet,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    to_score: dict[str, pd.DataFrame],
    *,
    workers: int,
    step: StageProgress,
    timings: dict[str, float],
    client: Client | None = None,
) -> CrossFitted:
    """Every fold's fit and the refits, `workers` at a time in worker processes (liblinear draws from
    the C library's one random state, so two fits on threads of one process would not give the same
    model twice), or on the Dask cluster of `client`; meanwhile a thread here vectorises the rows
    scored later."""
    y = fit.labels
    n_classes = len(np.unique(y))
    text_oof = np.zeros((len(y), n_classes))
    dense_oof = {name: np.zeros((len(y), n_classes)) for name in dense}
    jobs: list[tuple[str, Any]] = []
    svm = text.new_svm()
    for k, (fit_at, held_at) in enumerate(pairs):
        jobs.append((f"tfidf fold {k + 1}", delayed(fit_svm)(svm, matrix, y, fit_at, held_at)))
    jobs.append(("tfidf refit", delayed(fit_svm)(svm, matrix, y, np.arange(len(y)), None)))
    for view, d in dense.items():
        estimator, classes, x, has = d.model.unfitted(), d.model.classes_, d.features, d.rows
        for k, (fit_at, held_at) in enumerate(pairs):
            a, b = fit_at[has[fit_at]], held_at[has[held_at]]
            jobs.append((f"{view} fold {k + 1}", delayed(fit_dense)(estimator, classes, x, y, a, b)))
        every = np.flatnonzero(has)
        jobs.append((f"{view} refit", delayed(fit_dense)(estimator, classes, x, y, every, None)))

    names = [name for name, _ in jobs]
    started = time.perf_counter()
    step("cross-fitting", 0, len(jobs))
    with ThreadPoolExecutor(max_workers=1) as side:
        scoring = side.submit(lambda: {name: text.transform(frame) for name, frame in to_score.items()})
        runner = parallel(workers, client, return_as="generator_unordered")
        tagged = runner(delayed(_tagged)(i, job) for i, (_, job) in enumerate(jobs))
        for done, (i, result) in enumerate(reported(tagged, client, len(jobs), step), start=1):
            name = names[i]
            if name.startswith("tfidf fold"):
                held_at, margins = result
                text_oof[held_at] = margins
            elif name == "tfidf refit":
                text.set_svm(result)
            elif name.endswith("refit"):
                dense[name.split()[0]].model.pipeline = result
            else:
                held_at, raw = result
                dense_oof[name.split()[0]][held_at] = raw
            step("cross-fitting", done, len(jobs))
        scored_matrices = scoring.result()
    timings["cross_fit_s"] = time.perf_counter() - started
    fitted = text.pipeline.named_steps["svm"]
    scored = {name: text.margins(fitted, m) for name, m in scored_matrices.items()}
    return CrossFitted(text_oof, dense_oof, scored)


def _tagged(index: int, job: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]) -> tuple[int, Any]:
    function, args, kwargs = job
    return index, function(*args, **kwargs)


def fit_svm(
    svm: LinearSVC, matrix: sparse.csr_matrix, y: np.ndarray, fit_at: np.ndarray, held_at: np.ndarray | None
) -> Any:
    """A worker's job: an SVM fitted on `fit_at`, or the margins it gives the `held_at` rows."""
    with _LIBLINEAR:
        fitted = clone(svm).fit(matrix[fit_at], y[fit_at])
    return fitted if held_at is None else (held_at, TextModel.margins(fitted, matrix[held_at]))


def fit_dense(
    estimator: Pipeline,
    classes: np.ndarray,
    features: np.ndarray,
    y: np.ndarray,
    fit_at: np.ndarray,
    held_at: np.ndarray | None,
) -> Any:
    """A worker's job: a dense view's model fitted on `fit_at`, or its raw probabilities of `held_at`."""
    if held_at is None:
        return clone(estimator).fit(features[fit_at], y[fit_at])
    if len(np.unique(y[fit_at])) < 2:  # a fold with photos of one class: no image answer there
        return held_at, np.full((len(held_at), len(classes)), 1.0 / len(classes))
    fitted = clone(estimator).fit(features[fit_at], y[fit_at])
    out = np.zeros((len(held_at), len(classes)))
    out[:, np.searchsorted(classes, fitted.classes_)] = fitted.predict_proba(features[held_at])
    return held_at, out


def svm_f1(
    c: float, fit_at: np.ndarray, held_at: np.ndarray, svm: LinearSVC, matrix: Any, y: np.ndarray
) -> float:
    """The search's score for `text.C`: weighted F1 of an SVM with that C."""
    with _LIBLINEAR:
        fitted = clone(svm).set_params(C=c).fit(matrix[fit_at], y[fit_at])
    pred = fitted.classes_[TextModel.margins(fitted, matrix[held_at]).argmax(1)]
    return float(f1_score(y[held_at], pred, average="weighted", zero_division=0))


def lr_path_log_loss(
    cs: list[float],
    fit_at: np.ndarray,
    held_at: np.ndarray,
    estimator: Pipeline,
    features: np.ndarray,
    y: np.ndarray,
) -> list[float]:
    """The search's scores for `image.C` / `embedding.C` on one fold: minus the log loss of the model
    with each C in turn (ascending), each fit warm-started from the previous one, until `stop_early`."""
    scaler, model = (clone(step) for _, step in estimator.steps)
    fit_x = scaler.fit_transform(features[fit_at])
    held_x = scaler.transform(features[held_at])
    model.set_params(warm_start=True)
    scores: list[float] = []
    for c in cs:
        model.set_params(C=c).fit(fit_x, y[fit_at])
        scores.append(-float(log_loss(y[held_at], model.predict_proba(held_x), labels=model.classes_)))
        if stop_early(scores):
            break
    return scores
