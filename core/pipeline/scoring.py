"""Scoring a classifier on a feature set: each view's inputs as the classifier reads them (from the
feature set, or from the content caches when the classifier was trained with other encoders), and the
hold-out evaluation. Used by the evaluate and predict steps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sklearn.metrics import f1_score

from core.config import Settings
from core.features.build import FeatureSet
from core.features.cache import ImageFeatureCache
from core.features.image import get_encoder
from core.features.sentence import TextEmbeddingCache, get_text_encoder
from core.models.classifier import IMAGE, ProductClassifier, Views
from core.models.evaluate import Evaluation, evaluate
from core.models.train import TrainResult
from core.params import Params


def text_scores_for(trained: TrainResult, name: str, part: FeatureSet) -> np.ndarray | None:
    """The text view's scores training already computed for these rows (`holdout`, `predict`), if kept."""
    kept = trained.text_scores.get(name)
    return kept.for_rows(part.products.index) if kept is not None else None


def score(
    classifier: ProductClassifier,
    part: FeatureSet,
    params: Params,
    settings: Settings,
    workers: int,
    *,
    text_scores: np.ndarray | None = None,
) -> Evaluation:
    """The classifier's hold-out evaluation on `part` (overall, per class, per view)."""
    image_features, has_image = image_features_for(classifier, part, settings, workers)
    embeddings = embeddings_for(classifier, part, settings)
    views = classifier.views(
        part.products, image_features, has_image, text_scores=text_scores, embeddings=embeddings
    )
    evaluation = evaluate(
        part.labels,
        views.fused,
        classifier.classes,
        top_k=params.evaluate.top_k,
        views={name: (views.probas[name], views.ran(name)) for name in views.probas},
    )
    if views.set_aside is None:
        return evaluation
    return with_guard(evaluation, part.labels, classifier, views, views.set_aside)


def with_guard(
    evaluation: Evaluation,
    labels: np.ndarray,
    classifier: ProductClassifier,
    views: Views,
    set_aside: np.ndarray,
) -> Evaluation:
    """The evaluation with what the photo guard did on these rows: the share of photos it set aside
    (photos like the training ones: it must stay rare) and the fused score had it let every photo count."""
    photos = views.ran(IMAGE)
    unguarded = classifier.fuse(views.probas, {**views.available, IMAGE: photos})
    pred = classifier.classes[unguarded.argmax(axis=1)]
    metrics = {
        **evaluation.metrics,
        "image_set_aside": float(set_aside[photos].mean()) if photos.any() else 0.0,
        "image_set_aside_rows": float(set_aside.sum()),
        "weighted_f1_unguarded": float(f1_score(labels, pred, average="weighted", zero_division=0)),
    }
    return replace(evaluation, metrics=metrics)


def image_features_for(
    classifier: ProductClassifier, part: FeatureSet, settings: Settings, workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Image features in the classifier's own encoding: the feature set's when the encoders match
    (a champion trained with another encoder gets its features from the content cache)."""
    if classifier.encoder == part.encoder:
        return part.image_features, part.has_image
    cache = ImageFeatureCache(settings.image_cache_dir, get_encoder(classifier.encoder))
    has = part.has_image.copy()
    out = np.zeros((len(has), cache.encoder.n_features), dtype=np.float32)
    if has.any():
        paths = part.products.loc[has, "image_path"].astype(str).tolist()
        out[has], ok = cache.features(paths, workers=workers)
        has[has] = ok
    return out, has


def embeddings_for(classifier: ProductClassifier, part: FeatureSet, settings: Settings) -> np.ndarray | None:
    """Passage embeddings as the classifier's embedding view reads them: the feature set's when made the
    same way, else from the content cache (a champion trained with another text encoder or length)."""
    model = classifier.embedding
    if model is None:
        return None
    if part.embeddings is not None and (part.embedder, part.max_tokens) == (model.encoder, model.max_tokens):
        return part.embeddings
    cache = TextEmbeddingCache(
        settings.embedding_cache_dir, get_text_encoder(model.encoder, model.max_tokens)
    )
    return cache.features(part.products["passage"].astype(str).tolist())
