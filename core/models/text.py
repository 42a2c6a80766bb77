"""Text model: word and character n-gram TF-IDF → linear SVM (one-vs-rest), with probabilities.

Input is the normalized `title` and `text` columns (`core.features.text.model_text`). The SVM margins
become probabilities through a softmax whose temperature is fitted on validation rows (one scalar,
so the ranking — and every F1 — is unchanged, while top-k lists and late fusion get calibrated scores).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l1, inplace_csr_row_normalize_l2

from core.params import TextParams


def build_text_pipeline(params: TextParams, *, n_jobs: int = 1, seed: int = 0) -> Pipeline:
    """The unfitted vectorizers + classifier (also what the benchmark times as the bare fit)."""
    vectorizers: list[tuple[str, TfidfVectorizer, str]] = [
        (
            "word",
            TfidfVectorizer(
                ngram_range=(1, params.word_ngram_max),
                min_df=params.word_min_df,
                max_features=params.word_max_features,
                sublinear_tf=True,
                dtype=np.float32,
            ),
            "text",
        ),
        (
            "char",
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(params.char_ngram_min, params.char_ngram_max),
                min_df=params.char_min_df,
                max_features=params.char_max_features,
                sublinear_tf=True,
                dtype=np.float32,
            ),
            "text",
        ),
    ]
    if params.title_features:
        vectorizers.append(("title", TfidfVectorizer(sublinear_tf=True, dtype=np.float32), "title"))
    return Pipeline(
        [
            ("features", ColumnTransformer(vectorizers, n_jobs=n_jobs, sparse_threshold=1.0)),
            ("svm", LinearSVC(C=params.C, random_state=seed)),
        ]
    )


class TextModel:
    """Fitted text classifier: `decision_function`, calibrated `predict_proba`, `classes_`."""

    def __init__(self, params: TextParams, *, n_jobs: int = 1, seed: int = 0) -> None:
        self.params = params
        self.pipeline = build_text_pipeline(params, n_jobs=n_jobs, seed=seed)
        self.temperature = 1.0

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.pipeline.classes_)

    @property
    def n_features(self) -> int:
        steps = self.pipeline.named_steps["features"].transformers_
        return int(sum(len(t.vocabulary_) for _, t, _ in steps if hasattr(t, "vocabulary_")))

    def fit(self, text: pd.DataFrame, y: np.ndarray) -> TextModel:
        self.fit_and_score(text, y)
        return self

    def fit_and_score(
        self,
        text: pd.DataFrame,
        y: np.ndarray,
        *,
        also: Mapping[str, pd.DataFrame] | None = None,
        meanwhile: Callable[[], Any] | None = None,
    ) -> tuple[dict[str, np.ndarray], Any]:
        """Fit on `text` / `y`. Returns the decision scores of the `also` frames (e.g. validation and
        test rows) and the result of `meanwhile()`: both run while the SVM trains — liblinear
        releases the GIL, so the second core works instead of idling through the single-threaded fit."""
        features, svm = self.pipeline.named_steps["features"], self.pipeline.named_steps["svm"]
        matrix = features.fit_transform(text[["title", "text"]], y)
        features.n_jobs = None  # scoring runs one request at a time in the API: no process pool there
        with ThreadPoolExecutor(max_workers=1) as pool:
            fitting = pool.submit(svm.fit, matrix, y)
            others = {
                name: features.transform(frame[["title", "text"]]) for name, frame in (also or {}).items()
            }
            extra = meanwhile() if meanwhile is not None else None
            fitting.result()
        scores = {name: np.asarray(svm.decision_function(m), dtype=np.float64) for name, m in others.items()}
        return scores, extra

    def decision_function(self, text: pd.DataFrame | Mapping[str, Sequence[str]]) -> np.ndarray:
        """SVM margins for model-ready `title` / `text` columns (a DataFrame or a dict of lists).

        The same numbers as `pipeline.decision_function` (a test holds them equal) through the
        fitted pieces directly: sklearn's per-call input checks cost more than scoring one product,
        which is what the API does all day."""
        features, svm = self.pipeline.named_steps["features"], self.pipeline.named_steps["svm"]
        blocks = [
            _tfidf(vectorizer, list(text[column]))
            for _, vectorizer, column in features.transformers_
            if isinstance(vectorizer, TfidfVectorizer)
        ]
        scores = safe_sparse_dot(sparse.hstack(blocks, format="csr"), svm.coef_.T, dense_output=True)
        scores = np.asarray(scores + svm.intercept_, dtype=np.float64)
        return scores.ravel() if scores.shape[1] == 1 else scores

    def calibrate(
        self, text: pd.DataFrame | None, y: np.ndarray, *, scores: np.ndarray | None = None
    ) -> float:
        """Fit the softmax temperature on held-out rows (minimum log loss); returns it. Pass the rows'
        decision `scores` when already computed."""
        if scores is None:
            assert text is not None
            scores = self.decision_function(text)
        target = np.searchsorted(self.classes_, y)
        known = np.isin(y, self.classes_)
        scores, target = scores[known], target[known]

        def nll(log_t: float) -> float:
            logp = log_softmax(scores / np.exp(log_t), axis=1)
            return float(-logp[np.arange(len(target)), target].mean())

        best = minimize_scalar(nll, bounds=(np.log(1e-3), np.log(10.0)), method="bounded")
        self.temperature = float(np.exp(best.x))
        return self.temperature

    def proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        return softmax(scores / self.temperature, axis=1)

    def predict_proba(self, text: pd.DataFrame | Mapping[str, Sequence[str]]) -> np.ndarray:
        return self.proba_from_scores(self.decision_function(text))


def _tfidf(vectorizer: TfidfVectorizer, documents: list[str]) -> sparse.csr_matrix:
    """`vectorizer.transform(documents)` without re-validating its own count matrix: counting through
    the public `CountVectorizer.transform`, then the tf-idf weighting exactly as `TfidfTransformer`
    applies it (sublinear tf, idf, row normalization by sklearn's own in-place kernels)."""
    weights = vectorizer._tfidf
    if weights.norm not in {"l2", "l1", None}:
        return vectorizer.transform(documents)
    matrix = CountVectorizer.transform(vectorizer, documents).tocsr()
    if weights.sublinear_tf:
        np.log(matrix.data, matrix.data)
        matrix.data += 1.0
    if hasattr(weights, "idf_"):
        matrix.data *= weights.idf_[matrix.indices]
    if weights.norm == "l2":
        inplace_csr_row_normalize_l2(matrix)
    elif weights.norm == "l1":
        inplace_csr_row_normalize_l1(matrix)
    return matrix
