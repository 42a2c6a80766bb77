"""Prefect flows: `training_pipeline` and `monitor_and_retrain`. They only wire core functions.

The training flow is derived from the chain (`core.pipeline.chain.STEPS`): one task per step, retried
where the step says it is idempotent, so a run shows each step's state, logs and duration in Prefect and
means what `python -m core pipeline` and the DVC stages mean. The monitoring flow wires the signals, a
drift report and the retrain decision of `core.monitoring.retrain`. A long step's progress goes to the
run's log and to a progress artifact of its task run, updated as it goes; each run ends with a Markdown
artifact summarising what happened.

A run acts for whoever started it (its `actor` parameter, its `user:` and `via:` tags; their role was
checked, and recorded, where they started it); the scheduled monitoring acts as its schedule. The registry
move a training makes is written to the audit trail once, naming them, with the run's id as its origin.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from prefect import Task, flow, get_run_logger, tags, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from core.config import Settings, get_settings
from core.errors import RakutenError
from core.monitoring.retrain import (
    RetrainDecision,
    Signals,
    Thresholds,
    check_drift,
    decide_retrain,
    read_signals,
    with_drift,
)
from core.orchestration.flow_audit import SCHEDULE, acting_for, drift_report_recorded, registry_move_audited
from core.orchestration.flow_runs import run_tags
from core.orchestration.step_progress import LiveProgress
from core.params import load_params, with_overrides
from core.pipeline.chain import STEPS, Chain, Note, Step, not_promoted, run_step
from core.progress import StageProgress
from core.storage.drift_reports import DriftSummary

SUMMARY_KEY: Final = "training-summary"
DECISION_KEY: Final = "retrain-decision"


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: only unexpected I/O failures are worth another try; a `RakutenError` (missing
    folder, bad file, no champion) says what to fix and would fail the same way again."""
    return not isinstance(state.result(raise_on_failure=False), RakutenError)


def _logged(every_s: float = 2.0) -> StageProgress:
    """Progress of a long step as log lines (at most one per stage every `every_s`, plus the last) and as
    the task run's progress artifact (`LiveProgress`: what the console draws under the steps' bar)."""
    logger = get_run_logger()
    last: dict[str, float] = {}
    live = LiveProgress()

    def report(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last.get(stage, 0.0) >= every_s:
            last[stage] = now
            logger.info("%s: %s / %s", stage, f"{done:,}", f"{total:,}")
        live(stage, done, total)

    return report


def _tell(notes: list[Note] | list[str]) -> None:
    """A step's notes (or plain messages, at INFO) into the run's log."""
    logger = get_run_logger()
    for note in notes:
        level, message = note if isinstance(note, tuple) else (logging.INFO, note)
        logger.log(level, "%s", message)


def _as_task(step: Step) -> Task[[Chain], None]:
    """The step as a Prefect task of the same name (its retries for transient failures only)."""

    def run(chain: Chain) -> None:
        _tell(run_step(step, chain, _logged()))

    run.__name__ = run.__qualname__ = step.name
    return task(
        name=step.name,
        retries=step.retries,
        retry_delay_seconds=5,
        retry_condition_fn=_transient,
        cache_policy=NO_CACHE,
    )(run)


TASKS: Final = {step.name: _as_task(step) for step in STEPS}


# --- training ----------------------------------------------------------------------------------------
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
    cluster: str | None = None  # the Dask cluster the fits ran on (RAKUTEN_DASK_ADDRESS), None on one machine

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, chain: Chain) -> TrainingSummary:
        outcome = chain.evaluated
        assert outcome is not None
        return cls(
            version=outcome.version,
            promoted=outcome.decision.promote,
            reasons=list(outcome.decision.reasons),
            champion_before=outcome.champion_before,
            champion_after=outcome.champion_after,
            run_id=outcome.run_id,
            metrics={
                k: float(v) for k, v in outcome.evaluation.metrics.items() if isinstance(v, int | float)
            },
            predictions=str(chain.predicted.predictions) if chain.predicted else None,
            timings=dict(chain.timings),
            cluster=chain.trained.summary.get("cluster") if chain.trained else None,
        )


@flow(name="training-pipeline", log_prints=False)
def training_pipeline(
    overrides: dict[str, Any] | None = None, workers: int | None = None, actor: str = "prefect"
) -> dict[str, Any]:
    """ingest → features → train → evaluate (register, gate) → batch predict, one task per step.

    `overrides`: dotted params.yaml keys (`{"text.C": 1.0}`), as `dvc exp run -S` takes them."""
    settings = get_settings()
    params = with_overrides(load_params(settings.params_file), overrides or {})
    chain = Chain(settings, params, workers or settings.n_workers, actor)
    for step in STEPS:
        if step.name == "predict" and chain.evaluated and chain.evaluated.champion_after is None:
            break  # nothing to predict with: said below, once the summary is recorded
        if step.name == "evaluate":
            with registry_move_audited(chain):
                TASKS[step.name](chain)
        else:
            TASKS[step.name](chain)
    summary = TrainingSummary.of(chain)
    create_markdown_artifact(
        _training_markdown(summary, settings), key=SUMMARY_KEY, description="Training pipeline outcome"
    )
    if chain.evaluated and chain.predicted is None:
        raise not_promoted(chain.evaluated)
    return summary.to_dict()


# --- monitoring --------------------------------------------------------------------------------------
@task(name="signals", retries=2, retry_delay_seconds=5, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def signals(settings: Settings) -> Signals:
    """What the service received lately against the champion's own confidence on the test split."""
    return read_signals(settings)


@task(name="drift", retries=1, retry_delay_seconds=5, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def drift(settings: Settings, rows: int) -> DriftSummary | None:
    """An Evidently drift report on the same window (None, with the reason logged, when there are too
    few predictions or no champion yet)."""
    report, notes = check_drift(settings, rows, progress=_logged())
    _tell(notes)
    return report


@flow(name="monitor-and-retrain")
def monitor_and_retrain(
    retrain: bool = True, workers: int | None = None, actor: str | None = None
) -> dict[str, Any]:
    """Read the monitoring signals and a fresh drift report, decide (thresholds from Settings), record
    the decision as an artifact, and run the training pipeline when it says so (and `retrain` allows).

    `actor`: who started this run by hand; unset (the daily schedule), the schedule acts."""
    settings = get_settings()
    who = acting_for(actor) if actor else SCHEDULE
    found = signals(settings)
    report = drift(settings, found.rows)
    if report is not None:
        drift_report_recorded(settings, who, report)
    decision = decide_retrain(with_drift(found, report), Thresholds.of(settings))
    _tell(decision.reasons)
    create_markdown_artifact(
        _decision_markdown(decision, report), key=DECISION_KEY, description="Retrain decision"
    )
    result: dict[str, Any] = {
        "decision": decision.to_dict(),
        "drift_report": report.html if report else None,
        "training": None,
    }
    if decision.retrain and retrain:
        get_run_logger().info("retraining for %s", who.name)
        with tags(*run_tags(who.name, who.via)):  # the training's own run says who it acts for
            result["training"] = training_pipeline(workers=workers, actor=who.name)
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
        f"Predictions: `{s.predictions or 'not written'}`  \nSteps: {steps}  \n"
        f"Ran on: {s.cluster or 'this machine (RAKUTEN_DASK_ADDRESS unset)'}\n"
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
