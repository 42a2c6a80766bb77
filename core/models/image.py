"""Image model: standardized encoder features → multinomial logistic regression.

Trained only on rows whose image was read; classes absent from the images get probability 0 here and
the fusion leaves those products to the text model.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from core.params import ImageParams


class ImageModel:
    """Fitted image classifier over a fixed class list (the text model's)."""

    def __init__(self, params: ImageParams, classes: np.ndarray, *, seed: int = 0) -> None:
        self.params = params
        self.classes_ = np.asarray(classes)
        self.pipeline: Pipeline = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=seed),
        )

    def fit(self, features: np.ndarray, y: np.ndarray) -> ImageModel:
        self.pipeline.fit(features, y)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probabilities over `classes_` (columns for classes never seen in images are 0)."""
        out = np.zeros((len(features), len(self.classes_)))
        if len(features):
            seen = np.searchsorted(self.classes_, self.pipeline.classes_)
            out[:, seen] = self.pipeline.predict_proba(features)
        return out
