"""The train step: split → fit text and image models → calibrate and choose the fusion weight.

Pure with respect to storage: takes a `FeatureSet` and `Params`, returns a `TrainResult`; the pipeline
module saves it. The split is stratified by class and fixed by `params.seed`, so the evaluation rows
are the same on every run over the same data.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from core.errors import RakutenError
from core.features.build import FeatureSet
from core.io import atomic_path, write_text
from core.models.classifier import ProductClassifier
from core.models.fusion import choose_weight
from core.models.image import ImageModel
from core.models.text import TextModel
from core.params import Params, SplitParams
from core.progress import StageProgress, silent

log = logging.getLogger(__name__)

FILES: Final = {"classifier": "classifier.joblib", "split": "split.parquet", "summary": "training.json"}
PARTS: Final = ("train", "validation", "test")
_MIN_PER_CLASS: Final = 3


class TrainingDataError(RakutenError):
    """The labelled data cannot support a train/validation/test split."""


@dataclass(frozen=True)
class TextScores:
    """Text-model decision scores of some products, computed during training (in memory only)."""

    ids: pd.Index
    scores: np.ndarray

    def for_rows(self, ids: pd.Index) -> np.ndarray | None:
        return self.scores if self.ids.equals(ids) else None


@dataclass
class TrainResult:
    classifier: ProductClassifier
    split: pd.Series  # product id → train | validation | test
    summary: dict[str, Any] = field(default_factory=dict)
    text_scores: dict[str, TextScores] = field(default_factory=dict)  # validation / test / predict

    def save(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        out = {name: folder / file for name, file in FILES.items()}
        with atomic_path(out["classifier"]) as tmp:
            joblib.dump(self.classifier, tmp)
        with atomic_path(out["split"]) as tmp:
            self.split.rename("part").to_frame().to_parquet(tmp)
        write_text(out["summary"], json.dumps(self.summary, indent=2, default=str))
        return out

    @classmethod
    def load(cls, folder: Path) -> TrainResult:
        from core.errors import DataNotFoundError

        if not (folder / FILES["summary"]).is_file():
            raise DataNotFoundError(f"No trained model at {folder}: run `python -m core train` first.")
        classifier = joblib.load(folder / FILES["classifier"])
        split = pd.read_parquet(folder / FILES["split"])["part"]
        summary = json.loads((folder / FILES["summary"]).read_text(encoding="utf-8"))
        return cls(classifier, split, summary)


def split_rows(labels: pd.Series, params: SplitParams, seed: int) -> pd.Series:
    """Stratified train / validation / test assignment of labelled product ids."""
    counts = labels.value_counts()
    rare = counts[counts < _MIN_PER_CLASS]
    if len(rare):
        raise TrainingDataError(
            f"{len(rare)} classes have fewer than {_MIN_PER_CLASS} labelled products "
            f"({', '.join(map(str, rare.index[:5]))}): each class needs one row per split part. "
            "Add data or use a larger demo set (RAKUTEN_DEMO_ROWS)."
        )
    ids = labels.index.to_numpy()
    y = labels.to_numpy()
    held = params.validation_size + params.test_size
    try:
        _, held_ids = train_test_split(ids, test_size=held, stratify=y, random_state=seed)
    except ValueError as exc:  # fewer held-out (or training) rows than classes
        raise TrainingDataError(
            f"{len(ids)} labelled products in {len(counts)} classes are too few for a stratified "
            f"{params.validation_size:g} / {params.test_size:g} validation / test split ({exc}). "
            "Add data or use a larger demo set (RAKUTEN_DEMO_ROWS)."
        ) from exc
    held_y = labels.loc[held_ids].to_numpy()
    share = params.test_size / held
    try:
        val_ids, test_ids = train_test_split(held_ids, test_size=share, stratify=held_y, random_state=seed)
    except ValueError:  # a class with a single held-out row: split without stratifying it
        val_ids, test_ids = train_test_split(held_ids, test_size=share, random_state=seed)
    part = pd.Series("train", index=labels.index, name="part")
    part.loc[val_ids] = "validation"
    part.loc[test_ids] = "test"
    return part


def train(
    features: FeatureSet, params: Params, *, workers: int = 1, progress: StageProgress | None = None
) -> TrainResult:
    """Fit the text model, the image model (if enough images) and the fusion weight."""
    step: StageProgress = progress or silent
    labelled = features.part("train")
    split = split_rows(labelled.products["prdtypecode"].astype("int64"), params.split, params.seed)
    parts = {name: labelled.rows(split.index[split == name]) for name in PARTS}
    fit, val = parts["train"], parts["validation"]
    timings: dict[str, float] = {}

    # While the single-threaded SVM trains, the other core vectorises the rows scored later
    # (validation, test, X_test; their scores are kept for evaluate and predict in this process) and
    # fits the small image model.
    to_score = {"validation": val, "test": parts["test"]}
    unlabelled = features.part("test")
    if len(unlabelled.products):
        to_score["predict"] = unlabelled
    step("train", 0, 1)
    start = time.perf_counter()
    text = TextModel(params.text, n_jobs=min(workers, 3), seed=params.seed)
    scores_of, (image, timings["image_fit_s"]) = text.fit_and_score(
        fit.products,
        fit.labels,
        also={k: v.products for k, v in to_score.items()},
        meanwhile=lambda: _fit_image(fit, params, np.unique(fit.labels)),
    )
    timings["text_fit_s"] = time.perf_counter() - start
    step("train", 1, 1)
    temperature = text.calibrate(None, val.labels, scores=scores_of["validation"])
    text_scores = {k: TextScores(to_score[k].products.index, v) for k, v in scores_of.items()}

    p_text = text.proba_from_scores(scores_of["validation"])
    p_image = image.predict_proba(val.image_features) if image is not None else None
    weight, scores = choose_weight(
        p_text, p_image, val.has_image, val.labels, text.classes_, step=params.fusion.grid_step
    )
    classifier = ProductClassifier(text=text, image=image, encoder=features.encoder, fusion_weight=weight)
    summary = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": {name: len(p.products) for name, p in parts.items()},
        "images": {name: int(p.has_image.sum()) for name, p in parts.items()},
        "text_features": text.n_features,
        "temperature": temperature,
        "fusion_weight": weight,
        "fusion_scores": {str(k): v for k, v in scores.items()},
        "validation_text_weighted_f1": float(
            f1_score(val.labels, text.classes_[p_text.argmax(1)], average="weighted")
        ),
        "image_model": image is not None,
        "encoder": features.encoder,
        "timings": timings,
    }
    classifier.info = {k: summary[k] for k in ("trained_at", "rows", "fusion_weight", "temperature")}
    return TrainResult(classifier, split, summary, text_scores)


def _fit_image(fit: FeatureSet, params: Params, classes: np.ndarray) -> tuple[ImageModel | None, float]:
    start = time.perf_counter()
    n_images = int(fit.has_image.sum())
    if n_images < max(params.image.min_rows, 2) or len(np.unique(fit.labels[fit.has_image])) < 2:
        log.info("image model skipped: %d training images (< %d)", n_images, params.image.min_rows)
        return None, 0.0
    image = ImageModel(params.image, classes, seed=params.seed)
    with threadpool_limits(1):  # one core: the other one is running the text model's fit
        image.fit(fit.image_features[fit.has_image], fit.labels[fit.has_image])
    return image, time.perf_counter() - start
