"""How hard a generated dataset is: reference models scored like on the real data (weighted F1).

Used by the data tests (bounds) and the benchmark (numbers in docs/benchmarks.md), so both measure the
same thing: a stratified 80/20 split fixed by a seed.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from core.data.challenge import image_name
from core.features.image import colour_edge_features, load_small


def _split(features: Any, labels: np.ndarray, seed: int) -> list[Any]:
    return train_test_split(features, labels, test_size=0.2, stratify=labels, random_state=seed)


def raw_text(x: pd.DataFrame) -> np.ndarray:
    """Title + raw description, as the reference models read them."""
    return (x["designation"] + " " + x["description"].fillna("")).to_numpy()


def reference_models(seed: int = 0) -> dict[str, Pipeline]:
    """`logreg`: seed-style TF-IDF (20k features) + LogisticRegression; `svm`: word(1–2) + char_wb(2–5)
    TF-IDF + LinearSVC — the baselines the platform's own model is measured against."""
    return {
        "logreg": make_pipeline(TfidfVectorizer(max_features=20_000), LogisticRegression(max_iter=1000)),
        "svm": make_pipeline(
            make_union(
                TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
            ),
            LinearSVC(C=0.5, random_state=seed),
        ),
    }


def text_scores(x: pd.DataFrame, y: pd.Series, seed: int = 0) -> dict[str, float]:
    """Weighted F1 of each reference model on a stratified 80/20 split of title + raw description."""
    x_tr, x_te, y_tr, y_te = _split(raw_text(x), y.to_numpy(), seed)
    return {
        name: float(f1_score(y_te, model.fit(x_tr, y_tr).predict(x_te), average="weighted"))
        for name, model in reference_models(seed).items()
    }


def _features(path: str) -> np.ndarray:
    return colour_edge_features(load_small(path))


def image_score(x: pd.DataFrame, y: pd.Series, image_dir: Path, *, workers: int = 1, seed: int = 0) -> float:
    """Image-only LogisticRegression on colour/edge features of the train images in `image_dir`."""
    paths = [str(image_dir / image_name(i, p)) for i, p in zip(x["imageid"], x["productid"], strict=True)]
    with ProcessPoolExecutor(workers) as pool:
        features = np.stack(list(pool.map(_features, paths, chunksize=256)))
    f_tr, f_te, y_tr, y_te = _split(features, y.to_numpy(), seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(f_tr, y_tr)
    return float(f1_score(y_te, model.predict(f_te), average="weighted"))
