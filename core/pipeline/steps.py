"""The training pipeline's steps, each a function of Settings and params that reads the previous
step's files (or its in-memory result) and writes its own: `python -m core <step>` runs one (a DVC
stage); `core.pipeline.chain` puts them in order for `python -m core pipeline` and the Prefect flow."""
# Size: six short steps side by side, as the chain and dvc.yaml list them; each wires core functions only.

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.compute.cluster import cluster
from core.config import Settings
from core.data.ingest import load_report
from core.data.prepare import PrepareOutcome, prepare
from core.errors import DataFormatError, RakutenError
from core.features.build import FeatureSet, build_features
from core.io import atomic_path, write_text
from core.models.behaviour import BehaviourReport, run_behaviour
from core.models.evaluate import Evaluation
from core.models.figures import save_figures
from core.models.train import TrainResult, classifier_file, train
from core.params import Params
from core.pipeline import record
from core.pipeline.scoring import embeddings_for, image_features_for, score, text_scores_for
from core.progress import StageProgress, silent
from core.tracking import store
from core.tracking.gate import Decision
from core.tracking.integrity import ModelIntegrityError
from core.tracking.registration import register_candidate
from core.tracking.registry import NoChampionError, open_registry
from core.tracking.store import TrainingRun

log = logging.getLogger(__name__)


@dataclass
class EvaluateOutcome:
    evaluation: Evaluation
    behaviour: BehaviourReport
    decision: Decision
    run_id: str
    version: int
    champion_before: int | None
    champion_after: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "version": self.version,
            "promoted": self.decision.promote,
            "reasons": self.decision.reasons,
            "candidate_weighted_f1": self.decision.candidate_f1,
            "champion_weighted_f1": self.decision.champion_f1,
            "champion_before": self.champion_before,
            "champion_after": self.champion_after,
            "behaviour_pass_rate": self.behaviour.pass_rate,
        }

    @property
    def registry_move(self) -> str:
        """What the registry made of the new version, in one line (the audit trail's detail)."""

        before, after = (
            "none" if version is None else f"v{version}"
            for version in (self.champion_before, self.champion_after)
        )
        if self.champion_after == self.version:
            return f"v{self.version} registered and promoted: champion {before} → v{self.version}"
        return f"v{self.version} registered as challenger; the champion stays {after}"


@dataclass(frozen=True)
class PredictOutcome:
    version: int
    rows: int
    predictions: Path
    probabilities: Path


# --- steps ----------------------------------------------------------------------------------------
def ingest_step(
    settings: Settings, *, workers: int, force: bool = False, progress: StageProgress | None = None
) -> PrepareOutcome:
    """Generate demo data if the default folder is empty; ingest (read, validate, quarantine) if the
    raw files changed. Refused when validation left no training rows."""
    outcome = prepare(settings, workers=workers, force=force, progress=progress)
    report = load_report(settings.interim_dir)
    if report is None:
        raise DataFormatError("No validation report after ingestion.", problem="no_report")
    if report.total("rows_kept", ["train"]) == 0:
        raise DataFormatError(
            f"Validation left no training rows (report: {settings.interim_dir / 'validation_report.md'}).",
            problem="no_rows",
        )
    return outcome


def features_step(
    settings: Settings, params: Params, *, workers: int, progress: StageProgress | None = None
) -> FeatureSet:
    with cluster(settings) as client:  # RAKUTEN_DASK_ADDRESS: encoding and embedding on its workers
        features = build_features(
            settings.interim_dir,
            settings.image_cache_dir,
            settings.embedding_cache_dir,
            encoder=params.image.encoder,
            embedder=params.embedding.encoder,
            max_tokens=params.embedding.max_tokens,
            workers=workers,
            progress=progress,
            client=client,
        )
    features.save(settings.features_dir)
    return features


def train_step(
    settings: Settings,
    params: Params,
    *,
    workers: int,
    features: FeatureSet | None = None,
    progress: StageProgress | None = None,
) -> TrainResult:
    features = features or FeatureSet.load(settings.features_dir)
    with cluster(settings) as client:  # RAKUTEN_DASK_ADDRESS: the searches' and folds' fits on its workers
        result = train(features, params, workers=workers, progress=progress, client=client)
    result.save(settings.candidate_dir)
    return result


def evaluate_step(
    settings: Settings,
    params: Params,
    *,
    features: FeatureSet | None = None,
    trained: TrainResult | None = None,
    actor: str = "pipeline",
    progress: StageProgress | None = None,
) -> EvaluateOutcome:
    """Score the candidate on the hold-out, record the run in MLflow, register it, and let the gate
    decide between champion and challenger (the champion is re-scored on the same rows)."""
    step: StageProgress = progress or silent
    features = features or FeatureSet.load(settings.features_dir)
    trained = trained or TrainResult.load(settings.candidate_dir)
    test = features.part("train").rows(trained.split.index[trained.split == "holdout"])

    step("evaluate", 0, 4)
    evaluation = score(
        trained.classifier, test, params, settings, 1, text_scores=text_scores_for(trained, "holdout", test)
    )
    evaluation.save(settings.evaluation_dir)
    save_figures(evaluation, settings.figures_dir)
    behaviour = run_behaviour(trained.classifier)
    write_text(settings.behaviour_file, json.dumps(behaviour.to_dict(), indent=2))
    step("evaluate", 1, 4)

    client = store.connect(settings)
    registry = open_registry(settings, client)
    champion = registry.champion()
    champion_f1 = None
    unusable: ModelIntegrityError | None = None
    if champion is not None:
        try:
            champion_model = store.load_classifier(settings, version=champion)
        except ModelIntegrityError as exc:
            # no service loads it either: a verified candidate replacing it must not wait for it
            log.warning("%s: the candidate is judged on the minimum checks alone", exc)
            unusable = exc
        else:
            champion_f1 = score(champion_model, test, params, settings, 1).weighted_f1
    step("evaluate", 2, 4)

    decision = record.gate(evaluation, behaviour, champion_f1, params.promotion)
    if unusable is not None:
        reasons = [r for r in decision.reasons if r != "no current champion"]
        decision = replace(decision, reasons=[*reasons, f"champion {unusable} (not re-scored)"])
    train_part = features.part("train")
    training = TrainingRun(
        name=f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}",
        params=record.run_params(
            params, trained.classifier.encoder, trained.classifier.embedder, trained.summary
        ),
        metrics=record.run_metrics(evaluation, behaviour, trained.summary, champion_f1),
        tags=record.run_tags(
            store.git_tags(settings.root),
            load_report(settings.interim_dir),
            rows=len(train_part.products),
            images=int(train_part.has_image.sum()),
            decision=decision,
        ),
        artifact_dirs={"evaluation": settings.evaluation_dir},
        artifact_files=_artifact_files(settings),
        classifier_file=classifier_file(settings.candidate_dir),
    )
    registered = register_candidate(
        client, registry, settings, training, decision, champion=champion, actor=actor
    )
    step("evaluate", 3, 4)
    outcome = EvaluateOutcome(
        evaluation,
        behaviour,
        registered.decision,
        registered.run_id,
        registered.version,
        champion,
        registered.champion_after,
    )
    write_text(settings.registry_outcome_file, json.dumps(outcome.to_dict(), indent=2))
    step("evaluate", 4, 4)
    return outcome


def _artifact_files(settings: Settings) -> dict[str, Path]:
    """The files a training run keeps beside its evaluation: its summary, the validation report of
    the data it saw and the params.yaml it ran with."""
    files = {"training": settings.candidate_dir / "training.json"}
    for name in ("validation_report.json", "validation_report.md"):
        if (settings.interim_dir / name).is_file():
            files[name] = settings.interim_dir / name
    if settings.params_file.is_file():
        files["params"] = settings.params_file
    report = load_report(settings.interim_dir)
    applied = report.stats.get("corrections", {}) if report else {}
    exported = settings.corrections_file
    if applied and exported.is_file():
        if hashlib.sha256(exported.read_bytes()).hexdigest() == applied.get("file_sha256"):
            files["corrections"] = exported  # the reviewed labels this model was trained with
        else:
            log.warning("the corrections file changed since ingest: not logged with the run")
    return files


def predict_step(
    settings: Settings,
    *,
    workers: int,
    features: FeatureSet | None = None,
    fresh: tuple[int, TrainResult] | None = None,
    progress: StageProgress | None = None,
) -> PredictOutcome:
    """Predict X_test with the champion: `predictions.csv` in the submission format
    (`,prdtypecode` indexed by X_test's ids) and `probabilities.csv` (one column per code).
    `fresh` = (version, its training result) spares reloading a champion this process just trained."""
    step: StageProgress = progress or silent
    client = store.connect(settings)
    version = open_registry(settings, client).champion()
    if version is None:  # checked first: on a fresh project this, not "no features", is what to fix
        raise NoChampionError(NoChampionError.TRAIN_FIRST)
    features = features or FeatureSet.load(settings.features_dir)
    test = features.part("test")
    if test.products.empty:
        raise RakutenError("The ingested data has no test split (X_test file) to predict.")
    step("predict", 0, len(test.products))
    scores = None
    if fresh is not None and fresh[0] == version:
        classifier = fresh[1].classifier
        scores = text_scores_for(fresh[1], "predict", test)
    else:
        classifier = store.load_classifier(settings, version=version)
    image_features, has_image = image_features_for(classifier, test, settings, workers)
    embeddings = embeddings_for(classifier, test, settings)
    proba = classifier.proba_from_features(
        test.products, image_features, has_image, text_scores=scores, embeddings=embeddings
    )
    answers = classifier.answers(proba, index=test.products.index)
    submission = answers[["prdtypecode"]].rename_axis(None)
    with atomic_path(settings.predictions_file) as tmp:
        submission.to_csv(tmp)
    probabilities = pd.DataFrame(
        proba, index=test.products.index, columns=[str(c) for c in classifier.classes]
    )
    with atomic_path(settings.probabilities_file) as tmp:
        probabilities.rename_axis("id").round(6).to_csv(tmp)
    step("predict", len(test.products), len(test.products))
    return PredictOutcome(version, len(test.products), settings.predictions_file, settings.probabilities_file)
