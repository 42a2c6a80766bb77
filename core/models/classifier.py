"""`ProductClassifier`: the one object that answers every prediction — batch, API and console.

It owns the text model, the optional image model, the image encoder's name and the fusion weight, and
takes raw product fields (designation, description, image) so callers never clean or encode themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from core.categories import names
from core.errors import ImageDecodeError
from core.features.image import get_encoder, open_image
from core.features.text import model_columns, model_text
from core.models.fusion import fuse
from core.models.image import ImageModel
from core.models.text import TextModel

ImageSource = str | Path | bytes | None


@dataclass
class ProductClassifier:
    """Text + image late-fusion classifier over the challenge's product type codes."""

    text: TextModel
    image: ImageModel | None
    encoder: str
    fusion_weight: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> np.ndarray:
        return self.text.classes_

    # --- probabilities -------------------------------------------------------------------------
    def text_proba(self, products: pd.DataFrame, *, workers: int = 1) -> np.ndarray:
        """Text-only probabilities from raw `designation` / `description` columns."""
        return self.text.predict_proba(model_text(_text_columns(products), workers=workers))

    def image_proba(self, features: np.ndarray) -> np.ndarray | None:
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
    ) -> np.ndarray:
        """Fused probabilities from model-ready inputs: normalized `title` / `text` columns and image
        features from this classifier's encoder (the pipeline has both cached), or the text model's
        decision scores for those rows when already computed."""
        p_text = (
            self.text.proba_from_scores(text_scores)
            if text_scores is not None
            else self.text.predict_proba(text)
        )
        if self.image is None or image_features is None or has_image is None:
            return p_text
        return fuse(p_text, self.image_proba(image_features), has_image, self.fusion_weight)

    def encode_images(self, images: Sequence[ImageSource]) -> tuple[np.ndarray, np.ndarray]:
        """Encode image sources one by one. A corrupt upload raises `ImageDecodeError` (the caller
        asked for that image); None means the product has no image."""
        return self.encode_pictures([None if s is None else open_image(s) for s in images])

    def encode_pictures(self, pictures: Sequence[Image.Image | None]) -> tuple[np.ndarray, np.ndarray]:
        """Encode already opened thumbnails (`open_image`); None where a product has no image."""
        encoder = get_encoder(self.encoder)
        features = np.zeros((len(pictures), encoder.n_features), dtype=np.float32)
        ok = np.zeros(len(pictures), dtype=bool)
        for i, picture in enumerate(pictures):
            if picture is not None:
                features[i] = encoder.encode(picture)
                ok[i] = True
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


__all__ = ["ImageDecodeError", "ImageSource", "ProductClassifier"]
