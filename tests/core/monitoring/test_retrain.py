"""The retrain decision: thresholds crossed or not, too little traffic, drift signals, and reasons."""

from core.monitoring.retrain import Signals, Thresholds, decide_retrain

T = Thresholds(min_rows=100, confidence_drop=0.1, drifted_share=0.5)


def test_too_few_predictions_never_retrain() -> None:
    d = decide_retrain(
        Signals(rows=10, recent_confidence=0.1, reference_confidence=0.9, drift_detected=True), T
    )
    assert not d.retrain and "only 10 predictions" in d.reasons[-1]


def test_confidence_drop_over_the_threshold_retrains() -> None:
    d = decide_retrain(Signals(rows=500, recent_confidence=0.6, reference_confidence=0.85), T)
    assert d.retrain and any("fell by 0.250" in r for r in d.reasons)
    assert any("drift not checked" in r for r in decide_retrain(
        Signals(rows=500, recent_confidence=0.8, reference_confidence=0.85), T).reasons)  # fmt: skip


def test_small_changes_do_not_retrain() -> None:
    d = decide_retrain(Signals(rows=500, recent_confidence=0.8, reference_confidence=0.85), T)
    assert not d.retrain and any("within" in r for r in d.reasons)


def test_drift_signals_retrain() -> None:
    assert decide_retrain(Signals(rows=500, recent_confidence=None, reference_confidence=None,
                                  drift_detected=True), T).retrain  # fmt: skip
    shared = decide_retrain(Signals(500, None, None, drift_detected=False, drifted_share=0.6), T)
    assert shared.retrain and any("60% of columns drifted" in r for r in shared.reasons)
    below = decide_retrain(Signals(500, None, None, drift_detected=False, drifted_share=0.2), T)
    assert not below.retrain


def test_decision_serializes() -> None:
    d = decide_retrain(Signals(rows=500, recent_confidence=0.5, reference_confidence=0.9), T)
    data = d.to_dict()
    assert data["retrain"] is True and data["signals"]["rows"] == 500
