"""Image model: standardized encoder features → multinomial logistic regression, temperature-calibrated.

Trained only on rows whose image was read; classes absent from the images get (almost) no probability
here, and the stacked fusion leaves those products to the text views. The temperature is fitted on
out-of-fold probabilities, so a photo the model cannot place gets a low confidence, not 99 %.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from core.models.calibration import fit_temperature, log_proba
from core.params import EmbeddingParams, ImageParams


class ImageModel:
    """Fitted image classifier over a fixed class list (the text model's)."""

    def __init__(self, params: ImageParams | EmbeddingParams, classes: np.ndarray, *, seed: int = 0) -> None:
        self.params = params
        self.classes_ = np.asarray(classes)
        self.temperature = 1.0
        self.pipeline: Pipeline = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=params.lr_C, max_iter=params.max_iter, random_state=seed),
        )

    def fit(self, features: np.ndarray, y: np.ndarray) -> ImageModel:
        self.pipeline.fit(features, y)
        return self

    def unfitted(self) -> Pipeline:
        """A fresh copy of the estimator (one per cross-fitting fold)."""
        return clone(self.pipeline)

    def raw_proba(self, features: np.ndarray, pipeline: Pipeline | None = None) -> np.ndarray:
        """Uncalibrated probabilities over `classes_` (columns for classes never seen in images are 0)."""
        fitted = pipeline if pipeline is not None else self.pipeline
        out = np.zeros((len(features), len(self.classes_)))
        if len(features):
            seen = np.searchsorted(self.classes_, fitted.classes_)
            out[:, seen] = fitted.predict_proba(features)
        return out

    def calibrate(self, raw: np.ndarray, y: np.ndarray) -> float:
        """Fit the temperature on out-of-fold `raw_proba` of rows labelled `y`; returns it."""
        known = np.isin(y, self.classes_)
        self.temperature = fit_temperature(log_proba(raw[known]), np.searchsorted(self.classes_, y[known]))
        return self.temperature

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        return softmax(log_proba(raw) / getattr(self, "temperature", 1.0), axis=1)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Calibrated probabilities over `classes_`."""
        return self.calibrated(self.raw_proba(features))
