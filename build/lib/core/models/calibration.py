"""Calibrated confidences: temperature scaling of a view's scores, and how far confidence is from accuracy.

A temperature divides a view's scores (SVM margins, or log-probabilities) before the softmax: one scalar,
fitted by minimum log loss on out-of-fold rows, so the ranking — and every F1 — is unchanged while the
probabilities mean what they say. Expected calibration error (ECE) is the gap between confidence and
accuracy, averaged over confidence bins weighted by their rows (top label, equal-width bins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

BINS: Final = 15
FLOOR: Final = 1e-6  # probabilities are mixed with this much of the uniform before taking logs


def fit_temperature(scores: np.ndarray, target: np.ndarray) -> float:
    """The temperature minimising the log loss of `softmax(scores / T)` for column indices `target`."""
    if len(target) == 0:
        return 1.0
    rows = np.arange(len(target))

    def nll(log_t: float) -> float:
        logp = log_softmax(scores / np.exp(log_t), axis=1)
        return float(-logp[rows, target].mean())

    best = minimize_scalar(nll, bounds=(np.log(1e-3), np.log(100.0)), method="bounded")
    return float(np.exp(best.x))


def log_proba(proba: np.ndarray) -> np.ndarray:
    """Log-probabilities safe for classes a view gave probability 0 (mixed with a little uniform)."""
    n_classes = proba.shape[1]
    return np.log((1.0 - FLOOR) * np.asarray(proba, dtype=np.float64) + FLOOR / n_classes)


def expected_calibration_error(proba: np.ndarray, target: np.ndarray, bins: int = BINS) -> float:
    """Top-label ECE of probabilities `proba` for column indices `target` (0 is perfect)."""
    if len(target) == 0:
        return float("nan")
    curve = reliability(proba, target, bins)
    return float(np.sum(curve.rows * np.abs(curve.accuracy - curve.confidence)) / len(target))


@dataclass(frozen=True)
class Reliability:
    """Per non-empty confidence bin: its upper edge, mean confidence, accuracy and rows."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    rows: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "bin_upper": self.edges.round(4).tolist(),
            "confidence": self.confidence.round(4).tolist(),
            "accuracy": self.accuracy.round(4).tolist(),
            "rows": self.rows.astype(int).tolist(),
        }


def reliability(proba: np.ndarray, target: np.ndarray, bins: int = BINS) -> Reliability:
    """The reliability-diagram data of `proba` (what a calibration plot draws)."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == target
    upper = np.linspace(0, 1, bins + 1)[1:]
    which = np.minimum(np.searchsorted(upper, confidence, side="left"), bins - 1)
    rows = np.bincount(which, minlength=bins).astype(float)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct.astype(float), minlength=bins)
    kept = rows > 0
    return Reliability(
        upper[kept], conf_sum[kept] / rows[kept], acc_sum[kept] / rows[kept], rows[kept].astype(int)
    )
