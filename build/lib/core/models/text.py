"""Text model: word and character n-gram TF-IDF → linear SVM (one-vs-rest), with probabilities.

Input is the normalized `title` and `text` columns (`core.features.text.model_text`). The SVM margins
become probabilities through a softmax whose temperature is fitted on out-of-fold margins (one scalar,
so the ranking — and every F1 — is unchanged, while top-k lists and stacking get calibrated scores).
Cross-fitting fits the vectorizers once (`fit_vectorizers`; no labels involved), then one SVM per fold
on those features (`new_svm`) and the shipped SVM on every row (`set_svm`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import softmax
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l1, inplace_csr_row_normalize_l2

from core.features.char_ngrams import CharNgramVectorizer
from core.models.calibration import fit_temperature
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
            CharNgramVectorizer(  # TfidfVectorizer's char_wb n-grams, counted word by word (faster)
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
            ("svm", LinearSVC(C=params.svm_C, random_state=seed)),
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
        """Fit the vectorizers and the SVM on every row given (no out-of-fold scores)."""
        self.set_svm(self.new_svm().fit(self.fit_vectorizers(text), y))
        return self

    def fit_vectorizers(self, text: pd.DataFrame) -> sparse.csr_matrix:
        """Fit the TF-IDF vocabularies on `text` (labels are not used) and return its feature matrix."""
        features = self.pipeline.named_steps["features"]
        matrix = features.fit_transform(text[["title", "text"]])
        features.n_jobs = None  # scoring runs one request at a time in the API: no process pool there
        return sparse.csr_matrix(matrix, dtype=np.float32)

    def transform(self, text: pd.DataFrame | Mapping[str, Sequence[str]]) -> sparse.csr_matrix:
        """The fitted vectorizers' features for model-ready `title` / `text` columns."""
        features = self.pipeline.named_steps["features"]
        blocks = [
            _tfidf(vectorizer, list(text[column]))
            for _, vectorizer, column in features.transformers_
            if isinstance(vectorizer, TfidfVectorizer)
        ]
        return sparse.hstack(blocks, format="csr")

    def new_svm(self) -> LinearSVC:
        """An unfitted SVM with this model's parameters (one per cross-fitting fold)."""
        return clone(self.pipeline.named_steps["svm"])

    def set_svm(self, svm: LinearSVC) -> None:
        """Make a fitted SVM (on features from `fit_vectorizers`) this model's classifier."""
        self.pipeline.steps[-1] = ("svm", svm)

    @staticmethod
    def margins(svm: LinearSVC, matrix: sparse.csr_matrix) -> np.ndarray:
        scores = safe_sparse_dot(matrix, svm.coef_.T, dense_output=True)
        return np.asarray(scores + svm.intercept_, dtype=np.float64)

    def decision_function(self, text: pd.DataFrame | Mapping[str, Sequence[str]]) -> np.ndarray:
        """SVM margins for model-ready `title` / `text` columns (a DataFrame or a dict of lists).

        The same numbers as `pipeline.decision_function` (a test holds them equal) through the
        fitted pieces directly: sklearn's per-call input checks cost more than scoring one product,
        which is what the API does all day."""
        scores = self.margins(self.pipeline.named_steps["svm"], self.transform(text))
        return scores.ravel() if scores.shape[1] == 1 else scores

    def calibrate(self, scores: np.ndarray, y: np.ndarray) -> float:
        """Fit the softmax temperature on out-of-fold decision `scores` of rows labelled `y`; returns it."""
        known = np.isin(y, self.classes_)
        target = np.searchsorted(self.classes_, y[known])
        self.temperature = fit_temperature(scores[known], target)
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
