"""`ProductClassifier`: the one object that answers every prediction — batch, API and console.

It owns the views (the TF-IDF text model, the optional sentence-embedding model, the optional image model
and its encoder's name) and the stacked fusion that combines them, and takes raw product fields
(designation, description, image) so callers never clean, embed or encode themselves. `views` gives each
view's own answer beside the fused one.
"""
# Size: the one object every prediction goes through: its views, fusion and answers belong together.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import pandas as pd
from PIL import Image

from core.categories import names
from core.errors import ImageDecodeError
from core.features.image import get_encoder, open_image
from core.features.sentence import NONE, get_text_encoder
from core.features.text import model_columns, model_text
from core.models.embedding import EmbeddingModel
from core.models.fusion import WeightedFusion
from core.models.image import ImageModel
from core.models.novelty import NoveltyGuard
from core.models.text import TextModel

ImageSource = str | Path | bytes | None

TFIDF: Final = "tfidf"
EMBEDDING: Final = "embedding"
IMAGE: Final = "image"
VIEWS: Final = (TFIDF, EMBEDDING, IMAGE)
TEXT_VIEWS: Final = (TFIDF, EMBEDDING)
VIEW_LABELS: Final = {TFIDF: "text (TF-IDF)", EMBEDDING: "text (sentence embedding)", IMAGE: "photo"}


class Fusion(Protocol):
    @property
    def keys(self) -> list[tuple[str, ...]]: ...

    def predict_proba(
        self, probas: Mapping[str, np.ndarray | None], available: Mapping[str, np.ndarray]
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class Views:
    """Each view's calibrated probabilities (None when the view did not run), which rows count in the
    fused answer, and the fused probabilities — one row per product, one column per code.

    `photo_distance` is each row's distance to the training photos (`core.models.novelty`; NaN for a row
    without a photo, None for a model without a guard); `set_aside` marks the rows whose photo was too
    unlike them to count (the fused
    answer comes from the text views there), `unfamiliar` every row whose photo was that far — also those
    with no text to fall back on, which the photo still answers."""

    probas: dict[str, np.ndarray | None]
    available: dict[str, np.ndarray]
    fused: np.ndarray
    photo_distance: np.ndarray | None = None
    set_aside: np.ndarray | None = None
    unfamiliar: np.ndarray | None = None

    def answered(self, row: int) -> tuple[str, ...]:
        """The views that count in product `row`'s fused answer."""
        return tuple(v for v in VIEWS if self.probas.get(v) is not None and bool(self.available[v][row]))

    def ran(self, view: str) -> np.ndarray:
        """The rows `view` scored, whether or not its answer counted."""
        rows = self.available[view]
        return rows | self.set_aside if view == IMAGE and self.set_aside is not None else rows

    def photo_set_aside(self, row: int) -> bool:
        return self.set_aside is not None and bool(self.set_aside[row])

    def photo_unfamiliar(self, row: int) -> bool:
        return self.unfamiliar is not None and bool(self.unfamiliar[row])


@dataclass
class ProductClassifier:
    """Text + image classifier with stacked fusion over the challenge's product type codes."""

    text: TextModel
    image: ImageModel | None
    encoder: str
    fusion: Fusion
    info: dict[str, Any] = field(default_factory=dict)
    embedding: EmbeddingModel | None = None
    novelty: NoveltyGuard | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Versions registered before stacking carry one image weight instead of a fusion; versions
        # from before the sentence-embedding view have none, from before the photo guard no guard.
        if "fusion" not in state:
            state["fusion"] = WeightedFusion(float(state.pop("fusion_weight", 0.0)))
        state.setdefault("embedding", None)
        state.setdefault("novelty", None)
        self.__dict__.update(state)

    @property
    def embedder(self) -> str:
        """The text encoder the embedding view reads ("none" without one)."""
        return NONE if self.embedding is None else self.embedding.encoder

    @property
    def classes(self) -> np.ndarray:
        return self.text.classes_

    # --- probabilities -------------------------------------------------------------------------
    def text_proba(self, products: pd.DataFrame, *, workers: int = 1) -> np.ndarray:
        """The answer from text alone (every text view through the fusion, no photo) for raw
        `designation` / `description` columns: what a product without a photo gets."""
        return self.views(model_text(_text_columns(products), workers=workers), None, None).fused

    def image_proba(self, features: np.ndarray) -> np.ndarray | None:
        """The image view's calibrated probabilities (None without an image model)."""
        return None if self.image is None else self.image.predict_proba(features)

    def predict_proba(
        self,
        products: pd.DataFrame,
        *,
        image_features: np.ndarray | None = None,
        has_image: np.ndarray | None = None,
        images: Sequence[ImageSource] | None = None,
        workers: int = 1,
    ) -> np.ndarray:
        """Fused probabilities, one row per product and one column per code in `classes`.

        Images come either already encoded (`image_features` + `has_image`, as the batch pipeline
        has them cached) or as sources (`images`: paths or bytes, None where a product has none)."""
        if images is not None:
            image_features, has_image = self.encode_images(images)
        text = model_text(_text_columns(products), workers=workers)
        return self.proba_from_features(text, image_features, has_image)

    def proba_from_texts(
        self,
        designations: Sequence[object],
        descriptions: Sequence[object],
        image_features: np.ndarray | None = None,
        has_image: np.ndarray | None = None,
    ) -> np.ndarray:
        """`predict_proba` for raw titles and descriptions given as lists (no DataFrame: the API's
        per-request path, where building frames costs more than scoring)."""
        return self.proba_from_features(model_columns(designations, descriptions), image_features, has_image)

    def proba_from_features(
        self,
        text: pd.DataFrame | Mapping[str, Sequence[str]],
        image_features: np.ndarray | None,
        has_image: np.ndarray | None,
        *,
        text_scores: np.ndarray | None = None,
        embeddings: np.ndarray | None = None,
    ) -> np.ndarray:
        """Fused probabilities from model-ready inputs: `model_text` columns and image features from this
        classifier's encoder (the pipeline has both cached), the text model's decision scores and the
        passage embeddings of those rows when already computed."""
        return self.views(
            text, image_features, has_image, text_scores=text_scores, embeddings=embeddings
        ).fused

    def views(
        self,
        text: pd.DataFrame | Mapping[str, Sequence[str]] | None,
        image_features: np.ndarray | None,
        has_image: np.ndarray | None,
        *,
        text_scores: np.ndarray | None = None,
        has_text: np.ndarray | None = None,
        embeddings: np.ndarray | None = None,
        guard: bool = True,
    ) -> Views:
        """Every view's answer and the fused one. `has_text` marks the rows with a title (default: all;
        rows without one are answered by the image view alone). `embeddings` are the rows' passage
        embeddings when already computed (else the embedding view embeds `text["passage"]`). With
        `guard` (and a model that has one), a photo unlike the training photos does not count where a
        text view can answer."""
        if text_scores is not None:
            n = len(text_scores)
        elif text is not None:
            n = len(text["title"])
        else:
            n = len(image_features) if image_features is not None else 0
        with_text = np.ones(n, dtype=bool) if has_text is None else np.asarray(has_text, dtype=bool)
        p_text: np.ndarray | None = None
        if text_scores is not None:
            p_text = self.text.proba_from_scores(text_scores)
        elif text is not None and with_text.any():
            p_text = np.full((n, len(self.classes)), 1.0 / len(self.classes))
            rows = np.flatnonzero(with_text)
            columns = {c: list(text[c]) for c in ("title", "text")}
            subset = (
                text if with_text.all() else {c: [v[i] for i in rows.tolist()] for c, v in columns.items()}
            )
            p_text[rows] = self.text.predict_proba(subset)
        p_embedding = self._embedding_proba(text, embeddings, with_text, n)
        p_image: np.ndarray | None = None
        with_image = np.zeros(n, dtype=bool)
        if self.image is not None and image_features is not None and has_image is not None:
            with_image = np.asarray(has_image, dtype=bool)
            if with_image.any():
                p_image = self.image.predict_proba(image_features)
        probas = {TFIDF: p_text, EMBEDDING: p_embedding, IMAGE: p_image}
        available = {
            TFIDF: with_text & (p_text is not None),
            EMBEDDING: with_text & (p_embedding is not None),
            IMAGE: with_image,
        }
        distance, set_aside, unfamiliar = None, None, None
        if self.novelty is not None and p_image is not None and image_features is not None:
            distance = np.full(n, np.nan)
            distance[with_image] = self.novelty.distance(image_features[with_image])
            unfamiliar = with_image & self.novelty.unfamiliar(np.nan_to_num(distance, nan=0.0))
            if guard:
                set_aside = unfamiliar & (available[TFIDF] | available[EMBEDDING])
                available[IMAGE] = with_image & ~set_aside
        return Views(probas, available, self.fuse(probas, available), distance, set_aside, unfamiliar)

    def fuse(
        self, probas: Mapping[str, np.ndarray | None], available: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """The fused probabilities of these view answers, each counting on its `available` rows."""
        return self.fusion.predict_proba(probas, available)

    def _embedding_proba(
        self,
        text: pd.DataFrame | Mapping[str, Sequence[str]] | None,
        embeddings: np.ndarray | None,
        with_text: np.ndarray,
        n: int,
    ) -> np.ndarray | None:
        if self.embedding is None or not with_text.any():
            return None
        if embeddings is None:
            if text is None:
                return None
            rows = np.flatnonzero(with_text)
            passages = list(text["passage"])
            encoder = get_text_encoder(self.embedding.encoder, self.embedding.max_tokens)
            embeddings = np.zeros((n, encoder.n_features), dtype=np.float32)
            embeddings[rows] = encoder.encode([passages[i] for i in rows.tolist()])
        return self.embedding.predict_proba(embeddings)

    def encode_images(self, images: Sequence[ImageSource]) -> tuple[np.ndarray, np.ndarray]:
        """Encode image sources one by one. A corrupt upload raises `ImageDecodeError` (the caller
        asked for that image); None means the product has no image."""
        side = get_encoder(self.encoder).side
        return self.encode_pictures([None if s is None else open_image(s, side) for s in images])

    def encode_pictures(self, pictures: Sequence[Image.Image | None]) -> tuple[np.ndarray, np.ndarray]:
        """Encode already opened pictures (`open_image`); None where a product has no image."""
        encoder = get_encoder(self.encoder)
        features = np.zeros((len(pictures), encoder.n_features), dtype=np.float32)
        ok = np.array([p is not None for p in pictures], dtype=bool)
        if ok.any():
            features[ok] = encoder.encode_batch([p for p in pictures if p is not None])
        return features, ok

    # --- answers -------------------------------------------------------------------------------
    def predict(self, products: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
        """`prdtypecode`, `category` and `confidence` for each product (index kept)."""
        return self.answers(self.predict_proba(products, **kwargs), index=products.index)

    def answers(self, proba: np.ndarray, *, index: pd.Index | None = None) -> pd.DataFrame:
        best = proba.argmax(axis=1)
        codes = self.classes[best]
        return pd.DataFrame(
            {
                "prdtypecode": codes.astype(int),
                "category": [names().get(int(c), "unknown") for c in codes],
                "confidence": proba[np.arange(len(best)), best],
            },
            index=index,
        )

    def top_k(self, proba: np.ndarray, k: int = 5) -> list[list[tuple[int, float]]]:
        """For each row, the `k` most likely (code, probability) pairs, best first."""
        order = np.argsort(-proba, axis=1)[:, :k]
        return [
            [(int(self.classes[j]), float(row[j])) for j in idx]
            for row, idx in zip(proba, order, strict=True)
        ]


def _text_columns(products: pd.DataFrame) -> pd.DataFrame:
    missing = {"designation", "description"} - set(products.columns)
    if "designation" in missing:
        raise ValueError("products need a 'designation' column (the product title)")
    if missing:
        products = products.assign(description="")
    return products


__all__ = [
    "EMBEDDING",
    "IMAGE",
    "TEXT_VIEWS",
    "TFIDF",
    "VIEWS",
    "ImageDecodeError",
    "ImageSource",
    "ProductClassifier",
    "Views",
]
