"""Prefect flows: `training_pipeline` and `monitor_and_retrain`.

They only wire core functions — the same `core.pipeline` steps DVC and `python -m core pipeline`
run — as small typed tasks, so a run shows each step's state, logs and duration in Prefect. Retries
only where a step is idempotent I/O (ingest, batch predict); evaluate registers a model version, so it
never runs twice. Each run ends with a Markdown artifact summarising what happened.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from core.config import Settings, get_settings
from core.errors import DataFormatError, RakutenError
from core.monitoring.retrain import RetrainDecision, Signals, Thresholds, decide_retrain
from core.params import Params, load_params, with_overrides
from core.progress import StageProgress

if TYPE_CHECKING:  # the step modules (pandas, scikit-learn, …) load in the tasks that use them:
    # a worker's flow process shows its first step ~1 s sooner
    from core.data.prepare import PrepareOutcome
    from core.features.build import FeatureSet
    from core.models.train import TrainResult
    from core.monitoring.reports import DriftSummary
    from core.pipeline import EvaluateOutcome, PredictOutcome

TRAINING_STEPS: Final = ("ingest", "validate", "features", "train", "evaluate", "predict")
SUMMARY_KEY: Final = "training-summary"
DECISION_KEY: Final = "retrain-decision"


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: only unexpected I/O failures are worth another try; a `RakutenError` (missing
    folder, bad file, no champion) says what to fix and would fail the same way again."""
    return not isinstance(state.result(raise_on_failure=False), RakutenError)


def _logged(every_s: float = 2.0) -> StageProgress:
    """Progress of a long step as log lines (at most one per stage every `every_s`, plus the last)."""
    logger = get_run_logger()
    last: dict[str, float] = {}

    def report(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last.get(stage, 0.0) >= every_s:
            last[stage] = now
            logger.info("%s: %s / %s", stage, f"{done:,}", f"{total:,}")

    return report


# --- tasks ------------------------------------------------------------------------------------------
@task(name="ingest", retries=2, retry_delay_seconds=5, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def ingest(settings: Settings, workers: int) -> PrepareOutcome:
    from core.pipeline import ingest_step

    outcome = ingest_step(settings, workers=workers, progress=_logged())
    get_run_logger().info(outcome.summary)
    return outcome


@task(name="validate", cache_policy=NO_CACHE)
def validate(settings: Settings) -> str:
    """The ingestion report must exist and leave training rows; its findings go to the log."""
    from core.data.ingest import load_report

    report = load_report(settings.interim_dir)
    if report is None:
        raise DataFormatError("No validation report after ingestion.", problem="no_report")
    kept = report.total("rows_kept", ["train"])
    if kept == 0:
        raise DataFormatError("Validation left no training rows.", problem="no_rows")
    summary = f"validation {report.status}: {kept:,} training rows, {len(report.problems)} finding(s)"
    logger = get_run_logger()
    logger.info(summary)
    for problem in report.problems[:20]:
        logger.warning("%s: %s", problem.code, problem.message)
    return summary


@task(name="features", cache_policy=NO_CACHE)
def features(settings: Settings, params: Params, workers: int) -> FeatureSet:
    from core.pipeline import features_step

    return features_step(settings, params, workers=workers, progress=_logged())


@task(name="train", cache_policy=NO_CACHE)
def train(settings: Settings, params: Params, workers: int, built: FeatureSet) -> TrainResult:
    from core.pipeline import train_step

    return train_step(settings, params, workers=workers, features=built, progress=_logged())


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate(
    settings: Settings, params: Params, built: FeatureSet, trained: TrainResult, actor: str
) -> EvaluateOutcome:
    """Score, track in MLflow, register, and let the gate promote or not (never retried)."""
    from core.pipeline import evaluate_step

    outcome = evaluate_step(
        settings, params, features=built, trained=trained, actor=actor, progress=_logged()
    )
    verdict = "promoted to champion" if outcome.decision.promote else "not promoted"
    get_run_logger().info("v%s %s: %s", outcome.version, verdict, outcome.decision.summary)
    return outcome


@task(name="predict", retries=1, retry_delay_seconds=5, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def predict(
    settings: Settings, workers: int, built: FeatureSet, fresh: tuple[int, TrainResult] | None
) -> PredictOutcome:
    from core.pipeline import predict_step

    return predict_step(settings, workers=workers, features=built, fresh=fresh, progress=_logged())


# --- flows ------------------------------------------------------------------------------------------
@dataclass
class TrainingSummary:
    version: int
    promoted: bool
    reasons: list[str]
    champion_before: int | None
    champion_after: int | None
    run_id: str
    metrics: dict[str, float]
    predictions: str | None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@flow(name="training-pipeline", log_prints=False)
def training_pipeline(
    overrides: dict[str, Any] | None = None, workers: int | None = None, actor: str = "prefect"
) -> dict[str, Any]:
    """ingest → validate → features → train → evaluate (register, gate) → batch predict.

    `overrides`: dotted params.yaml keys (`{"text.C": 1.0}`), as `dvc exp run -S` takes them."""
    settings = get_settings()
    params = with_overrides(load_params(settings.params_file), overrides or {})
    n = workers or settings.n_workers
    timings: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        start = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - start, 2)
        return out

    timed("ingest", lambda: ingest(settings, n))
    timed("validate", lambda: validate(settings))
    built = timed("features", lambda: features(settings, params, n))
    trained = timed("train", lambda: train(settings, params, n, built))
    outcome = timed("evaluate", lambda: evaluate(settings, params, built, trained, actor))
    predicted = None
    if outcome.champion_after is not None:
        fresh = (outcome.version, trained)
        predicted = timed("predict", lambda: predict(settings, n, built, fresh))
    summary = TrainingSummary(
        version=outcome.version,
        promoted=outcome.decision.promote,
        reasons=list(outcome.decision.reasons),
        champion_before=outcome.champion_before,
        champion_after=outcome.champion_after,
        run_id=outcome.run_id,
        metrics={k: float(v) for k, v in outcome.evaluation.metrics.items() if isinstance(v, int | float)},
        predictions=str(predicted.predictions) if predicted else None,
        timings=timings,
    )
    create_markdown_artifact(_training_markdown(summary, settings), key=SUMMARY_KEY,
                             description="Training pipeline outcome")  # fmt: skip
    if predicted is None:
        from core.tracking.registry import NoChampionError

        raise NoChampionError(
            f"v{outcome.version} was registered but not promoted ({outcome.decision.summary}) and there "
            "is no champion to predict with."
        )
    return summary.to_dict()


@task(name="signals", retries=2, retry_delay_seconds=5, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def signals(settings: Settings) -> Signals:
    """What the service received lately (inference log) against the champion's own confidence on the
    test split (`probabilities.csv` of the last batch prediction)."""
    from datetime import UTC, datetime, timedelta

    import pandas as pd

    from core.serving.inference_log import read_inference_log

    since = datetime.now(UTC) - timedelta(hours=settings.monitor_window_hours)
    recent = read_inference_log(settings, since=since, last=settings.monitor_window_rows)
    reference = None
    probabilities = settings.probabilities_file
    if probabilities.is_file():
        reference = float(pd.read_csv(probabilities, index_col=0).max(axis=1).mean())
    notes = [] if probabilities.is_file() else ["no batch predictions yet: no reference confidence"]
    return Signals(
        rows=len(recent),
        recent_confidence=float(recent["confidence"].mean()) if len(recent) else None,
        reference_confidence=reference,
        notes=notes,
    )


@task(name="drift", retries=1, retry_delay_seconds=5, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def drift(settings: Settings, rows: int) -> DriftSummary | None:
    """An Evidently drift report on the same window (None, with the reason logged, when there are too
    few predictions or no champion yet)."""
    from core.monitoring.drift import report_now

    logger = get_run_logger()
    if rows < settings.monitor_min_rows:
        logger.info("drift not checked: %s predictions in the window (< %s)", rows, settings.monitor_min_rows)
        return None
    try:
        summary = report_now(settings, progress=_logged())
    except RakutenError as exc:  # no champion, too few rows after all: the decision goes on without
        logger.warning("drift not checked: %s", exc)
        return None
    for reason in summary.reasons:
        logger.info(reason)
    logger.info("report: %s", settings.drift_dir / summary.html)
    return summary


@flow(name="monitor-and-retrain")
def monitor_and_retrain(retrain: bool = True, workers: int | None = None) -> dict[str, Any]:
    """Read the monitoring signals and a fresh drift report, decide (thresholds from Settings), record
    the decision as an artifact, and run the training pipeline when it says so (and `retrain` allows)."""
    settings = get_settings()
    found = signals(settings)
    report = drift(settings, found.rows)
    if report is not None:
        found = replace(found, drift_detected=report.drift_detected, drifted_share=report.drifted_share)
    thresholds = Thresholds(
        min_rows=settings.monitor_min_rows,
        confidence_drop=settings.retrain_confidence_drop,
        drifted_share=settings.retrain_drifted_share,
    )
    decision = decide_retrain(found, thresholds)
    logger = get_run_logger()
    for reason in decision.reasons:
        logger.info(reason)
    create_markdown_artifact(_decision_markdown(decision, report), key=DECISION_KEY,
                             description="Retrain decision")  # fmt: skip
    result: dict[str, Any] = {
        "decision": decision.to_dict(),
        "drift_report": report.html if report else None,
        "training": None,
    }
    if decision.retrain and retrain:
        logger.info("retraining")
        result["training"] = training_pipeline(workers=workers, actor="monitor-and-retrain")
    return result


# --- artifacts --------------------------------------------------------------------------------------
def _run_link(settings: Settings, run_id: str) -> str:
    uri = str(settings.mlflow_tracking_uri)
    if uri.startswith(("http://", "https://")):
        return f"[{run_id[:8]}]({uri.rstrip('/')}/#/runs/{run_id})"
    return f"`{run_id}` in `{uri}`"


def _training_markdown(s: TrainingSummary, settings: Settings) -> str:
    verdict = "promoted to **champion**" if s.promoted else "**not promoted** (challenger)"
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in s.metrics.items() if k in _SHOWN)
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in s.timings.items())
    reasons = "\n".join(f"- {r}" for r in s.reasons)
    return (
        f"## Model v{s.version}: {verdict}\n\n{reasons}\n\n| metric | value |\n|---|---:|\n{rows}\n\n"
        f"MLflow run: {_run_link(settings, s.run_id)}  \n"
        f"Champion: v{s.champion_before} → v{s.champion_after}  \n"
        f"Predictions: `{s.predictions or 'not written'}`  \nSteps: {steps}\n"
    )


_SHOWN: Final = ("weighted_f1", "macro_f1", "accuracy", "top5_accuracy", "text_weighted_f1")


def _decision_markdown(d: RetrainDecision, report: DriftSummary | None = None) -> str:
    verdict = "**retrain**" if d.retrain else "no retraining"
    reasons = "\n".join(f"- {r}" for r in d.reasons)
    s = d.signals
    share = f"{s.drifted_share:.0%}" if s.drifted_share is not None else "not checked"
    drifted = ", ".join(c.column for c in report.columns if c.drifted) if report else ""
    text = (
        f"## Monitoring: {verdict}\n\n{reasons}\n\n| signal | value |\n|---|---:|\n"
        f"| predictions in window | {s.rows:,} |\n| recent mean confidence | {s.recent_confidence} |\n"
        f"| reference mean confidence | {s.reference_confidence} |\n| drift detected | {s.drift_detected} |\n"
        f"| drifted columns | {share} |\n"
    )
    if report is not None:
        text += f"\nDrift report: `{report.html}` (drifted: {drifted or 'none'})\n"
    return text
