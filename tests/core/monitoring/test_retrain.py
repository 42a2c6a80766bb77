"""The retrain decision: thresholds crossed or not, too little traffic, drift signals, and reasons."""

from pathlib import Path

import pytest

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
    assert any(
        "drift not checked" in r
        for r in decide_retrain(
            Signals(rows=500, recent_confidence=0.8, reference_confidence=0.85), T
        ).reasons
    )


def test_small_changes_do_not_retrain() -> None:
    d = decide_retrain(Signals(rows=500, recent_confidence=0.8, reference_confidence=0.85), T)
    assert not d.retrain and any("within" in r for r in d.reasons)


def test_drift_signals_retrain() -> None:
    assert decide_retrain(
        Signals(rows=500, recent_confidence=None, reference_confidence=None, drift_detected=True), T
    ).retrain
    shared = decide_retrain(Signals(500, None, None, drift_detected=False, drifted_share=0.6), T)
    assert shared.retrain and any("60% of columns drifted" in r for r in shared.reasons)
    below = decide_retrain(Signals(500, None, None, drift_detected=False, drifted_share=0.2), T)
    assert not below.retrain


def test_decision_serializes() -> None:
    d = decide_retrain(Signals(rows=500, recent_confidence=0.5, reference_confidence=0.9), T)
    data = d.to_dict()
    assert data["retrain"] is True and data["signals"]["rows"] == 500


def test_signals_compare_recent_confidence_with_the_champion_s_own() -> None:
    import pandas as pd

    from core.monitoring.retrain import signals_from

    recent = pd.DataFrame({"confidence": [0.5, 0.7]})
    reference = pd.DataFrame({"10": [0.9, 0.1], "40": [0.1, 0.7]})  # the champion's top: 0.9 and 0.7
    found = signals_from(recent, reference)
    assert (found.rows, found.recent_confidence, found.reference_confidence) == (2, 0.6, 0.8)
    assert found.confidence_drop == pytest.approx(0.2) and not found.notes
    before_any_batch = signals_from(recent.iloc[:0], None)
    assert before_any_batch.rows == 0 and before_any_batch.recent_confidence is None
    assert before_any_batch.notes == ["no batch predictions yet: no reference confidence"]


def test_a_drift_report_adds_its_verdict_to_the_signals() -> None:
    from types import SimpleNamespace

    from core.monitoring.retrain import with_drift

    found = Signals(rows=500, recent_confidence=0.8, reference_confidence=0.8)
    assert with_drift(found, None) is found
    report = SimpleNamespace(drift_detected=True, drifted_share=0.6)
    drifted = with_drift(found, report)  # type: ignore[arg-type]
    assert (drifted.drift_detected, drifted.drifted_share) == (True, 0.6)
    assert decide_retrain(drifted, Thresholds()).retrain


def test_thresholds_come_from_settings(tmp_path: Path) -> None:
    from core.config import Settings

    settings = Settings(
        root=tmp_path,
        monitor_min_rows=50,
        retrain_confidence_drop=0.2,
        retrain_drifted_share=0.3,
        retrain_corrections=7,
    )
    assert Thresholds.of(settings) == Thresholds(
        min_rows=50, confidence_drop=0.2, drifted_share=0.3, corrections=7
    )


def test_enough_new_corrections_retrain_even_without_traffic() -> None:
    quiet = Signals(rows=0, recent_confidence=None, reference_confidence=None, corrections=60)
    d = decide_retrain(quiet, Thresholds(corrections=50))
    assert d.retrain and "60 new corrections since the champion's training (≥ 50)" in d.reasons
    few = decide_retrain(Signals(rows=500, recent_confidence=0.8, reference_confidence=0.8, corrections=3), T)
    assert not few.retrain and "3 new corrections (< 50)" in few.reasons


def test_new_corrections_are_counted_since_the_champion(trained_project: Path) -> None:
    """Before any correction: 0; a correction made now (after the champion's registration) counts."""
    from core.config import Settings
    from core.monitoring.retrain import new_corrections
    from core.storage.corrections import Correction, CorrectionsStore

    settings = Settings()
    assert new_corrections(settings) == (0, None)
    store = CorrectionsStore.open(str(settings.inference_log_url))
    try:
        cid = store.add(Correction.for_training(1, 10, 2705, "ana"))
        assert new_corrections(settings) == (1, None)
        store.undo(cid, by="ana")  # leave the shared project as it was (an undone correction does not count)
        assert new_corrections(settings) == (0, None)
    finally:
        store.close()
    down = settings.model_copy(update={"inference_log_url": "postgresql://nobody@127.0.0.1:9/none"})
    count, note = new_corrections(down)
    assert count is None and note is not None and note.startswith("corrections not counted")
