"""When to retrain: a pure decision from monitoring signals and thresholds (Settings), with reasons.

Signals come from the inference log (recent predictions' confidence against the champion's own
confidence on the test set: `signals_from`, read by `read_signals`) and from a drift report on the
same window (`check_drift`, `with_drift`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.config import Settings
from core.errors import RakutenError
from core.progress import StageProgress, silent
from core.storage.inference_log import read_inference_log

# Lazy imports: the registry (MLflow, ~1 s) and the corrections store load when signals are read.

if TYPE_CHECKING:
    from core.storage.drift_reports import DriftSummary


@dataclass(frozen=True)
class Signals:
    rows: int  # predictions in the window
    recent_confidence: float | None  # their mean confidence
    reference_confidence: float | None  # the champion's mean confidence on the test split
    drift_detected: bool | None = None  # None: no drift report available
    drifted_share: float | None = None
    notes: list[str] = field(default_factory=list)
    corrections: int | None = None  # corrections made since the champion was registered (None: unknown)

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
    corrections: int = 50

    @classmethod
    def of(cls, settings: Settings) -> Thresholds:
        return cls(
            settings.monitor_min_rows,
            settings.retrain_confidence_drop,
            settings.retrain_drifted_share,
            settings.retrain_corrections,
        )


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reasons: list[str]
    signals: Signals

    def to_dict(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "reasons": self.reasons, "signals": asdict(self.signals)}


def decide_retrain(signals: Signals, thresholds: Thresholds) -> RetrainDecision:
    """Retrain when reviewers made enough corrections since the champion's training; or, with enough
    recent predictions, when drift is detected or the share of drifted columns crosses its threshold, or
    when recent confidence fell by more than the threshold."""
    reasons: list[str] = list(signals.notes)
    retrain = False
    if signals.corrections is not None:
        if signals.corrections >= thresholds.corrections:
            retrain = True
            reasons.append(
                f"{signals.corrections} new corrections since the champion's training "
                f"(≥ {thresholds.corrections})"
            )
        else:
            reasons.append(f"{signals.corrections} new corrections (< {thresholds.corrections})")
    if signals.rows < thresholds.min_rows:
        reasons.append(
            f"only {signals.rows} predictions in the window (< {thresholds.min_rows}): no decision on traffic"
        )
        return RetrainDecision(retrain, reasons, signals)
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


def signals_from(recent: pd.DataFrame, reference: pd.DataFrame | None) -> Signals:
    """Signals of the recent inference log rows (their `confidence`) against the champion's class
    probabilities on the test split (`reference`: one row per product; None before any batch run)."""
    notes = [] if reference is not None else ["no batch predictions yet: no reference confidence"]
    return Signals(
        rows=len(recent),
        recent_confidence=float(recent["confidence"].mean()) if len(recent) else None,
        reference_confidence=float(reference.max(axis=1).mean()) if reference is not None else None,
        notes=notes,
    )


def read_signals(settings: Settings, *, now: datetime | None = None) -> Signals:
    """What the service received in the monitoring window (inference log) against the champion's own
    confidence on the test split (`probabilities.csv` of the last batch prediction)."""
    since = (now or datetime.now(UTC)) - timedelta(hours=settings.monitor_window_hours)
    recent = read_inference_log(settings, since=since, last=settings.monitor_window_rows)
    path = settings.probabilities_file
    reference = pd.read_csv(path, index_col=0) if path.is_file() else None
    found = signals_from(recent, reference)
    corrections, note = new_corrections(settings)
    return replace(found, corrections=corrections, notes=found.notes + ([note] if note else []))


def new_corrections(settings: Settings) -> tuple[int | None, str | None]:
    """Active corrections made since the champion was registered (all of them before any champion),
    or None and why when the registry or the store cannot be read."""
    import sqlalchemy as sa
    from mlflow.exceptions import MlflowException

    from core.storage.corrections import CorrectionsStore
    from core.tracking.registry import open_registry

    try:
        registry = open_registry(settings)
        champion = registry.champion()
        since = next((v.created_at for v in registry.versions() if v.version == champion), None)
        store = CorrectionsStore.open(str(settings.inference_log_url))
        try:
            return store.count_since(since), None
        finally:
            store.close()
    except (RakutenError, MlflowException, sa.exc.SQLAlchemyError, OSError) as exc:
        # the registry or the database is down: the other signals still decide
        return None, f"corrections not counted: {exc}"


def with_drift(signals: Signals, report: DriftSummary | None) -> Signals:
    """The signals with a drift report's verdict (unchanged without a report)."""
    if report is None:
        return signals
    return replace(signals, drift_detected=report.drift_detected, drifted_share=report.drifted_share)


def check_drift(
    settings: Settings, rows: int, *, progress: StageProgress = silent
) -> tuple[DriftSummary | None, list[str]]:
    """A fresh drift report on the window when it holds enough predictions, with what to tell about
    it; None (and why) when there are too few predictions or no champion yet — the decision goes on."""
    if rows < settings.monitor_min_rows:
        return None, [f"drift not checked: {rows} predictions in the window (< {settings.monitor_min_rows})"]
    from core.monitoring.drift import report_now  # MLflow, scikit-learn (~2 s): for a report only

    try:
        summary = report_now(settings, progress=progress)
    except RakutenError as exc:  # no champion, too few rows after all
        return None, [f"drift not checked: {exc}"]
    return summary, [*summary.reasons, f"report: {settings.drift_dir / summary.html}"]
