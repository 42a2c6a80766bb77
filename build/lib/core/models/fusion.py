"""The fusion rule of models trained before stacking: `(1 − w)·p_text + w·p_image` where there is an image.

Kept so that versions registered before the stacked fusion (`core.models.stacking`) still load and answer
the same way; new models never use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


def fuse(p_text: np.ndarray, p_image: np.ndarray | None, has_image: np.ndarray, weight: float) -> np.ndarray:
    """Fused probabilities; rows without a usable image keep the text probabilities."""
    out = np.array(p_text, dtype=np.float64, copy=True)
    if p_image is None or weight <= 0:
        return out
    rows = np.asarray(has_image, dtype=bool)
    out[rows] = (1.0 - weight) * p_text[rows] + weight * p_image[rows]
    return out


@dataclass(frozen=True)
class WeightedFusion:
    """One image weight chosen on validation rows (the rule before stacking), with the same interface
    as `StackedFusion`."""

    weight: float

    @property
    def keys(self) -> list[tuple[str, ...]]:
        return [("tfidf",), ("tfidf", "image")] if self.weight > 0 else [("tfidf",)]

    def predict_proba(
        self, probas: Mapping[str, np.ndarray | None], available: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        text, image = probas.get("tfidf"), probas.get("image")
        has_text = np.asarray(available["tfidf"], dtype=bool)
        if text is None:
            if image is None:
                raise ValueError("no view can score these rows")
            return np.asarray(image, dtype=np.float64)
        has_image = np.asarray(available.get("image", np.zeros(len(has_text), dtype=bool)), dtype=bool)
        out = fuse(text, image, has_image & has_text, self.weight)
        if image is not None:
            out[~has_text] = image[~has_text]
        return out
