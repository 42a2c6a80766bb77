"""The training chain — the one place its steps and their order are defined.

ingest (read, validate, quarantine) → features → train → evaluate (track, register, gate) → predict.

Each `Step` names the files it reads and writes (paths from Settings) and runs on a `Chain`: one run's
inputs and the in-memory results handed from step to step. Derived from `STEPS`: `run_pipeline`
(`python -m core pipeline`), the Prefect training flow (one task per step), and `dvc.yaml`'s stages
(`python -m core <step>` each, held to the same names, order, inputs and outputs by a test).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from core.config import Settings
from core.params import Params
from core.progress import StageProgress, silent
from core.tracking.registry import NoChampionError

# Lazy imports: the steps' modules (pandas, scikit-learn, MLflow) load when a step runs: the console
# reads the step names without them, and a flow's first step shows ~1 s sooner.
if TYPE_CHECKING:
    from core.data.prepare import PrepareOutcome
    from core.features.build import FeatureSet
    from core.models.train import TrainResult
    from core.pipeline.steps import EvaluateOutcome, PredictOutcome

log = logging.getLogger(__name__)

Note = tuple[int, str]
"""What a step reports when it ends: a logging level and a message (logged by whoever runs it)."""


@dataclass
class Chain:
    """One run of the chain in one process: its inputs, and each step's result for the next."""

    settings: Settings
    params: Params
    workers: int
    actor: str = "pipeline"
    prepared: PrepareOutcome | None = None
    features: FeatureSet | None = None
    trained: TrainResult | None = None
    evaluated: EvaluateOutcome | None = None
    predicted: PredictOutcome | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Chain, StageProgress], list[Note]]
    inputs: Callable[[Settings], list[Path]]  # the data it reads (DVC dependencies)
    outputs: Callable[[Settings], list[Path]]  # what it writes (DVC outputs and metrics)
    retries: int = 0  # idempotent I/O only: evaluate registers a model version, so it never runs twice


@dataclass
class PipelineResult:
    prepared: PrepareOutcome
    evaluated: EvaluateOutcome
    predicted: PredictOutcome
    timings: dict[str, float] = field(default_factory=dict)


# --- the steps ------------------------------------------------------------------------------------
def _ingest(chain: Chain, progress: StageProgress) -> list[Note]:
    from core.data.ingest import load_report
    from core.pipeline.steps import ingest_step

    chain.prepared = ingest_step(chain.settings, workers=chain.workers, progress=progress)
    report = load_report(chain.settings.interim_dir)
    assert report is not None  # ingest_step refuses to end without one
    kept = report.total("rows_kept", ["train"])
    notes = [
        (logging.INFO, chain.prepared.summary),
        (logging.INFO, f"{kept:,} training rows, {len(report.problems)} finding(s)"),
    ]
    return notes + [(logging.WARNING, f"{p.code}: {p.message}") for p in report.problems[:20]]


def _features(chain: Chain, progress: StageProgress) -> list[Note]:
    from core.pipeline.steps import features_step

    chain.features = features_step(chain.settings, chain.params, workers=chain.workers, progress=progress)
    return []


def _train(chain: Chain, progress: StageProgress) -> list[Note]:
    from core.pipeline.steps import train_step

    chain.trained = train_step(
        chain.settings, chain.params, workers=chain.workers, features=chain.features, progress=progress
    )
    return []


def _evaluate(chain: Chain, progress: StageProgress) -> list[Note]:
    from core.pipeline.steps import evaluate_step

    chain.evaluated = outcome = evaluate_step(
        chain.settings,
        chain.params,
        features=chain.features,
        trained=chain.trained,
        actor=chain.actor,
        progress=progress,
    )
    verdict = "promoted to champion" if outcome.decision.promote else "not promoted"
    return [(logging.INFO, f"v{outcome.version} {verdict}: {outcome.decision.summary}")]


def _predict(chain: Chain, progress: StageProgress) -> list[Note]:
    from core.pipeline.steps import predict_step

    evaluated = chain.evaluated
    fresh = None
    if evaluated is not None and chain.trained is not None:
        if evaluated.champion_after is None:  # else predict would say "run the pipeline" — that just ran
            raise not_promoted(evaluated)
        fresh = (evaluated.version, chain.trained)
    chain.predicted = predict_step(
        chain.settings, workers=chain.workers, features=chain.features, fresh=fresh, progress=progress
    )
    return [(logging.INFO, f"{chain.predicted.rows:,} predictions by v{chain.predicted.version}")]


def not_promoted(evaluated: EvaluateOutcome) -> NoChampionError:
    """The error of a chain whose new version was not promoted, with no champion to predict with."""
    return NoChampionError(
        f"Version {evaluated.version} was registered but not promoted ({evaluated.decision.summary}), "
        "and there is no champion to predict with. Promote it anyway with `python -m core promote "
        f"{evaluated.version} --reason ...`, or change the data or params.yaml and run again."
    )


def _ingest_outputs(s: Settings) -> list[Path]:
    from core.data.ingest import OUTPUTS

    names = ("train", "test", "quarantine", "report_json", "report_md")
    return [s.interim_dir / OUTPUTS[k] for k in names]


def _evaluate_outputs(s: Settings) -> list[Path]:
    from core.models.evaluate import FILES

    written = [s.evaluation_dir / name for name in FILES.values()]
    return [
        *written,
        s.figures_dir,
        s.behaviour_file,
        s.registry_outcome_file,
    ]


def _tables(s: Settings) -> list[Path]:
    from core.data.ingest import OUTPUTS

    return [s.interim_dir / OUTPUTS["train"], s.interim_dir / OUTPUTS["test"]]


STEPS: Final[tuple[Step, ...]] = (
    Step("ingest", _ingest, lambda s: [s.data_dir, s.corrections_dir], _ingest_outputs, retries=2),
    # the tables name the photos, whose pixels are read here: the raw folder is an input too
    Step("features", _features, lambda s: [*_tables(s), s.data_dir], lambda s: [s.features_dir]),
    Step("train", _train, lambda s: [s.features_dir], lambda s: [s.candidate_dir]),
    Step("evaluate", _evaluate, lambda s: [s.candidate_dir, s.features_dir], _evaluate_outputs),
    # the champion lives in the registry: the registration outcome stands for it
    Step(
        "predict",
        _predict,
        lambda s: [s.features_dir, s.registry_outcome_file],
        lambda s: [s.predictions_file, s.probabilities_file],
        retries=1,
    ),
)
STEP_NAMES: Final = tuple(step.name for step in STEPS)


# --- running it -----------------------------------------------------------------------------------
def run_step(step: Step, chain: Chain, progress: StageProgress = silent) -> list[Note]:
    """One step on the chain, timed (`chain.timings`)."""
    start = time.perf_counter()
    notes = step.run(chain, progress)
    chain.timings[step.name] = round(time.perf_counter() - start, 2)
    return notes


def run_pipeline(
    settings: Settings,
    params: Params,
    *,
    workers: int,
    actor: str = "pipeline",
    progress: StageProgress | None = None,
) -> PipelineResult:
    """Every step in order, in this process."""
    chain = Chain(settings, params, workers, actor)
    for step in STEPS:
        for level, message in run_step(step, chain, progress or silent):
            log.log(level, "%s: %s", step.name, message)
    assert chain.prepared and chain.evaluated and chain.predicted  # each step sets its result
    return PipelineResult(chain.prepared, chain.evaluated, chain.predicted, chain.timings)
