"""Temperature scaling recovers a known temperature; ECE is 0 when confidence matches accuracy."""

import numpy as np
import pytest
from scipy.special import softmax

from core.models.calibration import expected_calibration_error, fit_temperature, log_proba, reliability


def _sample(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    p = softmax(logits, axis=1)
    return np.array([rng.choice(p.shape[1], p=row) for row in p])


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_with() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(6000, 5))
    target = _sample(rng, logits)
    # Scores three times too sharp: the fitted temperature must undo it.
    assert fit_temperature(3.0 * logits, target) == pytest.approx(3.0, rel=0.08)
    assert fit_temperature(logits, target) == pytest.approx(1.0, rel=0.08)


def test_ece_is_small_when_calibrated_and_large_when_overconfident() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=2.0, size=(8000, 6))
    target = _sample(rng, logits)
    calibrated = softmax(logits, axis=1)
    overconfident = softmax(5.0 * logits, axis=1)
    assert expected_calibration_error(calibrated, target) < 0.02
    assert expected_calibration_error(overconfident, target) > 0.1


def test_reliability_bins_count_every_row_and_match_accuracy() -> None:
    proba = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    target = np.array([0, 1, 0, 0])
    curve = reliability(proba, target, bins=10)
    assert curve.rows.sum() == 4
    assert curve.accuracy.tolist() == [1.0, 0.5]
    assert curve.confidence.tolist() == pytest.approx([0.55, 0.95])
    assert expected_calibration_error(proba, target, bins=10) == pytest.approx((2 * 0.45 + 2 * 0.45) / 4)
    assert set(curve.to_dict()) == {"bin_upper", "confidence", "accuracy", "rows"}


def test_log_proba_is_finite_for_zero_probabilities() -> None:
    out = log_proba(np.array([[1.0, 0.0, 0.0]]))
    assert np.isfinite(out).all() and out[0, 0] > out[0, 1]
