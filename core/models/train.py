"""The train step: hold-out → cross-fitted views → calibration → stacked fusion → refit on every row.

Pure with respect to storage: takes a `FeatureSet` and `Params`, returns a `TrainResult`; the pipeline
module saves it. Products are held out for evaluation by a hash of their id (`core.models.holdout`);
every other labelled row trains the shipped model:

1. each view (TF-IDF text, sentence embedding when asked for, image) is fitted `split.folds` times, each
   time predicting the fold it did not see — out-of-fold probabilities for every training row — and once
   more on all of them (shipped);
2. each view's temperature is fitted on its out-of-fold scores (calibrated confidences);
3. the stacked fusion's meta-models are fitted on those out-of-fold probabilities;
4. the photo guard learns how far apart the training photos are (`core.models.novelty`).
"""
# Size: the training procedure reads as one story (hold-out, views, search, calibration, stacking, refit).

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from threadpoolctl import threadpool_limits

from core.compute.cluster import describe
from core.errors import DataNotFoundError
from core.features.build import FeatureSet
from core.io import atomic_path, load_model, save_model, write_text
from core.models.calibration import expected_calibration_error
from core.models.classifier import EMBEDDING, IMAGE, TFIDF, VIEWS, ProductClassifier
from core.models.crossfit import (
    DenseView,
    cross_fit,
    lr_path_log_loss,
    svm_f1,
)
from core.models.embedding import EmbeddingModel
from core.models.holdout import TrainingDataError, assign_parts, fold_count, folds
from core.models.image import ImageModel
from core.models.novelty import NoveltyGuard
from core.models.search import search_c, search_path
from core.models.stacking import fit_stacking
from core.models.text import TextModel
from core.params import Params
from core.progress import StageProgress, silent

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

FILES: Final = {
    "classifier": "classifier.pkl",
    "split": "split.parquet",
    "summary": "training.json",
    "oof": "out_of_fold.npz",
}

__all__ = ["FILES", "TextScores", "TrainResult", "TrainingDataError", "classifier_file", "train"]


@dataclass(frozen=True)
class TextScores:
    """Text-model decision scores of some products, computed during training (in memory only)."""

    ids: pd.Index
    scores: np.ndarray

    def for_rows(self, ids: pd.Index) -> np.ndarray | None:
        return self.scores if self.ids.equals(ids) else None


@dataclass(frozen=True)
class OutOfFold:
    """Every training row's out-of-fold, calibrated probabilities per view (what stacking was fitted on,
    and what a label-error search needs)."""

    ids: np.ndarray
    labels: np.ndarray
    classes: np.ndarray
    probas: dict[str, np.ndarray]
    available: dict[str, np.ndarray]

    def save(self, path: Path) -> None:
        arrays = {"ids": self.ids, "labels": self.labels, "classes": self.classes}
        for view, proba in self.probas.items():
            arrays[f"proba_{view}"] = proba.astype(np.float32)
            arrays[f"available_{view}"] = self.available[view]
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]


def classifier_file(folder: Path) -> Path:
    """The classifier file of a trained folder (`classifier.joblib` when it was trained before models
    were saved as plain pickles)."""
    file = folder / FILES["classifier"]
    old = folder / "classifier.joblib"
    return old if not file.is_file() and old.is_file() else file


@dataclass
class TrainResult:
    classifier: ProductClassifier
    split: pd.Series  # product id → train | holdout
    summary: dict[str, Any] = field(default_factory=dict)
    text_scores: dict[str, TextScores] = field(default_factory=dict)  # holdout / predict
    out_of_fold: OutOfFold | None = None

    def save(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        out = {name: folder / file for name, file in FILES.items()}
        save_model(self.classifier, out["classifier"])
        with atomic_path(out["split"]) as tmp:
            self.split.rename("part").to_frame().to_parquet(tmp)
        if self.out_of_fold is not None:
            self.out_of_fold.save(out["oof"])
        write_text(out["summary"], json.dumps(self.summary, indent=2, default=str))
        return out

    @classmethod
    def load(cls, folder: Path) -> TrainResult:
        if not (folder / FILES["summary"]).is_file():
            raise DataNotFoundError(f"No trained model at {folder}: run `python -m core train` first.")
        classifier = load_model(classifier_file(folder))
        split = pd.read_parquet(folder / FILES["split"])["part"]
        summary = json.loads((folder / FILES["summary"]).read_text(encoding="utf-8"))
        return cls(classifier, split, summary)


def train(
    features: FeatureSet,
    params: Params,
    *,
    workers: int = 1,
    progress: StageProgress | None = None,
    client: Client | None = None,
) -> TrainResult:
    """Cross-fit and refit every view, calibrate them, fit the stacked fusion. The searches' and the
    cross-fitting's fits run on the Dask cluster of `client` when there is one (the same fits: the same
    model)."""
    step: StageProgress = progress or silent
    labelled = features.part("train")
    labels = labelled.products["prdtypecode"].astype("int64")
    split = assign_parts(labelled.products["productid"], labels, params.split)
    fit = labelled.rows(split.index[split == "train"])
    held = labelled.rows(split.index[split == "holdout"])
    unlabelled = features.part("test")
    y = fit.labels
    n_folds = fold_count(y, params.split.folds)
    pairs = folds(y, n_folds, params.seed)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    step("text features", 0, 1)
    text = TextModel(params.text, n_jobs=min(workers, 3), seed=params.seed)
    matrix = text.fit_vectorizers(fit.products)
    step("text features", 1, 1)
    timings["text_vectorize_s"] = time.perf_counter() - start

    image_rows = fit.has_image
    image: ImageModel | None = None
    if image_rows.sum() >= max(params.image.min_rows, 2) and len(np.unique(y[image_rows])) >= 2:
        image = ImageModel(params.image, np.unique(y), seed=params.seed)
    else:
        n_images = int(image_rows.sum())
        log.info("image view skipped: %d training images (< %d)", n_images, params.image.min_rows)
    embedding: EmbeddingModel | None = None
    if fit.embeddings is not None:
        embedding = EmbeddingModel(params.embedding, np.unique(y), seed=params.seed)
    # The dense views: an estimator on a feature matrix, fitted on the rows that have those features.
    dense: dict[str, DenseView] = {}
    if embedding is not None and fit.embeddings is not None:
        dense[EMBEDDING] = DenseView(embedding, fit.embeddings, np.ones(len(y), dtype=bool), "embedding.C")
    if image is not None:
        dense[IMAGE] = DenseView(image, fit.image_features, image_rows, "image.C")
    start = time.perf_counter()
    searched = 1 + len(dense)
    step("hyper-parameter search", 0, searched)
    searches = [
        search_c(
            "text.C",
            params.text.C,
            y,
            svm_f1,
            data=(text.new_svm(), matrix, y),
            metric="weighted F1",
            seed=params.seed,
            workers=workers,
            processes=True,
            client=client,
            progress=step,
        )
    ]
    text.pipeline.named_steps["svm"].set_params(C=searches[0].best)
    step("hyper-parameter search", 1, searched)

    for done, view in enumerate(dense.values(), start=1):
        rows = view.rows
        found = search_path(
            view.search_name,
            view.model.params.C,
            y[rows],
            lr_path_log_loss,
            data=(view.model.unfitted(), view.features[rows], y[rows]),
            metric="-log loss",
            seed=params.seed,
            workers=workers,
            client=client,
            progress=step,
        )
        view.model.pipeline.set_params(logisticregression__C=found.best)
        searches.append(found)
        step("hyper-parameter search", 1 + done, searched)
    timings["search_s"] = time.perf_counter() - start

    to_score = {"holdout": held.products}
    if len(unlabelled.products):
        to_score["predict"] = unlabelled.products
    crossed = cross_fit(
        text, matrix, dense, fit, pairs, to_score, workers=workers, step=step, timings=timings, client=client
    )
    del matrix

    text.calibrate(crossed.text_oof, y)
    oof_probas = {TFIDF: text.proba_from_scores(crossed.text_oof)}
    available = {TFIDF: np.ones(len(y), dtype=bool)}
    for name, view in dense.items():
        view.model.calibrate(crossed.dense_oof[name][view.rows], y[view.rows])
        oof_probas[name] = view.model.calibrated(crossed.dense_oof[name])
        available[name] = view.rows.copy()

    start = time.perf_counter()
    step("stacking", 0, 1)
    text_views = (TFIDF, EMBEDDING) if embedding is not None else (TFIDF,)
    keys = [text_views] + ([(*text_views, IMAGE)] if image is not None else [])
    # One BLAS thread: on these small matrices OpenBLAS's threads cost far more than they give
    # (30× slower when another process keeps the second core busy).
    with threadpool_limits(1):
        fusion = fit_stacking(
            text.classes_,
            VIEWS,
            oof_probas,
            available,
            y,
            keys=keys,
            Cs=params.fusion.C,
            min_rows=params.fusion.min_rows,
            seed=params.seed,
            workers=workers,
        )
    step("stacking", 1, 1)
    timings["stacking_s"] = time.perf_counter() - start

    novelty: NoveltyGuard | None = None
    if image is not None and params.image.novelty.enabled:
        step("photo guard", 0, 1)
        novelty = NoveltyGuard.fit(fit.image_features[image_rows], params.image.novelty, seed=params.seed)
        step("photo guard", 1, 1)
    classifier = ProductClassifier(
        text=text,
        image=image,
        encoder=features.encoder,
        fusion=fusion,
        embedding=embedding,
        novelty=novelty,
    )
    oof = OutOfFold(fit.products.index.to_numpy(), y, text.classes_, oof_probas, available)
    summary = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": {"train": len(fit.products), "holdout": len(held.products)},
        "images": {"train": int(image_rows.sum()), "holdout": int(held.has_image.sum())},
        "holdout": {"share": params.split.holdout, "salt": params.split.salt, "by": "productid"},
        "folds": n_folds,
        "text_features": text.n_features,
        "temperature": {TFIDF: text.temperature, **{k: v.model.temperature for k, v in dense.items()}},
        "fusion": {"+".join(k): {"C": fusion.C[k]} for k in fusion.keys},
        "search": {s.name: s.to_dict() for s in [*searches, *fusion.searches.values()]},
        "out_of_fold": _oof_scores(oof),
        "image_model": image is not None,
        "photo_guard": novelty.describe() if novelty is not None else None,
        "encoder": features.encoder,
        "embedder": features.embedder,
        "timings": timings,
        "cluster": describe(client).summary() if client is not None else None,
    }
    classifier.info = {
        k: summary[k]
        for k in (
            "trained_at",
            "rows",
            "holdout",
            "folds",
            "temperature",
            "fusion",
            "encoder",
            "embedder",
            "photo_guard",
        )
    }
    text_scores = {k: TextScores(to_score[k].index, v) for k, v in crossed.scored.items()}
    return TrainResult(classifier, split, summary, text_scores, oof)


def _oof_scores(oof: OutOfFold) -> dict[str, float]:
    """Weighted F1 and calibration error of each view's out-of-fold probabilities."""
    out: dict[str, float] = {}
    for view, proba in oof.probas.items():
        rows = oof.available[view]
        if not rows.any():
            continue
        y = oof.labels[rows]
        pred = oof.classes[proba[rows].argmax(1)]
        out[f"{view}_weighted_f1"] = float(f1_score(y, pred, average="weighted", zero_division=0))
        out[f"{view}_ece"] = expected_calibration_error(proba[rows], np.searchsorted(oof.classes, y))
    return out
