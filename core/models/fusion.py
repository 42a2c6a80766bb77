"""Late fusion of text and image probabilities: `(1 − w)·p_text + w·p_image` where there is an image."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def fuse(p_text: np.ndarray, p_image: np.ndarray | None, has_image: np.ndarray, weight: float) -> np.ndarray:
    """Fused probabilities; rows without a usable image keep the text probabilities."""
    out = np.array(p_text, dtype=np.float64, copy=True)
    if p_image is None or weight <= 0:
        return out
    rows = np.asarray(has_image, dtype=bool)
    out[rows] = (1.0 - weight) * p_text[rows] + weight * p_image[rows]
    return out


def choose_weight(
    p_text: np.ndarray,
    p_image: np.ndarray | None,
    has_image: np.ndarray,
    y: np.ndarray,
    classes: np.ndarray,
    *,
    step: float = 0.05,
) -> tuple[float, dict[float, float]]:
    """The image weight with the best weighted F1 on validation rows (ties go to the smaller weight),
    and the score of every weight tried."""
    if p_image is None or not np.any(has_image):
        return 0.0, {0.0: float(f1_score(y, classes[p_text.argmax(1)], average="weighted"))}
    grid = np.round(np.arange(0.0, 1.0 + 1e-9, step), 4)
    scores = {
        float(w): float(
            f1_score(y, classes[fuse(p_text, p_image, has_image, w).argmax(1)], average="weighted")
        )
        for w in grid
    }
    best = max(scores, key=lambda w: (scores[w], -w))
    return best, scores
