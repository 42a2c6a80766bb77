"""When to retrain: a pure decision from monitoring signals and thresholds (Settings), with reasons.

Signals come from the inference log (recent predictions' confidence against the champion's own
confidence on the test set) and from a drift report on the same window (`core.monitoring.drift`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Signals:
    rows: int  # predictions in the window
    recent_confidence: float | None  # their mean confidence
    reference_confidence: float | None  # the champion's mean confidence on the test split
    drift_detected: bool | None = None  # None: no drift report available
    drifted_share: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def confidence_drop(self) -> float | None:
        if self.recent_confidence is None or self.reference_confidence is None:
            return None
        return self.reference_confidence - self.recent_confidence


@dataclass(frozen=True)
class Thresholds:
    min_rows: int = 200
    confidence_drop: float = 0.10
    drifted_share: float = 0.5


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reasons: list[str]
    signals: Signals

    def to_dict(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "reasons": self.reasons, "signals": asdict(self.signals)}


def decide_retrain(signals: Signals, thresholds: Thresholds) -> RetrainDecision:
    """Retrain when drift is detected or the share of drifted columns crosses its threshold, or when
    recent confidence fell by more than the threshold — only with enough recent predictions."""
    reasons: list[str] = list(signals.notes)
    if signals.rows < thresholds.min_rows:
        reasons.append(
            f"only {signals.rows} predictions in the window (< {thresholds.min_rows}): no decision"
        )
        return RetrainDecision(False, reasons, signals)
    retrain = False
    if signals.drift_detected:
        retrain = True
        reasons.append("drift detected in the latest report")
    share = signals.drifted_share
    if share is not None and share >= thresholds.drifted_share:
        retrain = True
        reasons.append(f"{share:.0%} of columns drifted (≥ {thresholds.drifted_share:.0%})")
    drop = signals.confidence_drop
    if drop is not None:
        if drop >= thresholds.confidence_drop:
            retrain = True
            reasons.append(
                f"mean confidence fell by {drop:.3f} (from {signals.reference_confidence:.3f} to "
                f"{signals.recent_confidence:.3f}; threshold {thresholds.confidence_drop:.3f})"
            )
        else:
            reasons.append(f"confidence change {-drop:+.3f} is within {thresholds.confidence_drop:.3f}")
    if not retrain and not any("drift" in r for r in reasons) and signals.drift_detected is None:
        reasons.append("no drift report yet: drift not checked")
    return RetrainDecision(retrain, reasons, signals)
