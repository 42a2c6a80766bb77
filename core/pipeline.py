"""The training pipeline's steps and their order — the one place the chain is defined.

ingest → features → train → evaluate (+ track, register, gate) → predict.
Each step reads its inputs from the previous step's files and writes its own, so DVC can run them as
separate stages (`python -m core <step>`); `run_pipeline` chains them in one process and hands the
in-memory results along instead of re-reading them. Prefect flows call these same functions.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config import REGISTERED_MODEL_NAME, Settings
from core.data.ingest import load_report
from core.data.prepare import PrepareOutcome, prepare
from core.errors import RakutenError
from core.features.build import FeatureSet, build_features
from core.features.cache import ImageFeatureCache
from core.features.image import get_encoder
from core.features.sentence import TextEmbeddingCache, get_text_encoder
from core.io import atomic_path, write_text
from core.models.behaviour import BehaviourReport, run_behaviour
from core.models.classifier import ProductClassifier
from core.models.evaluate import Evaluation, evaluate
from core.models.figures import save_figures
from core.models.train import TrainResult, classifier_file, train
from core.params import Params
from core.progress import StageProgress, silent
from core.tracking.gate import Candidate, Decision, decide
from core.tracking.registry import NoChampionError, open_registry

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


@dataclass(frozen=True)
class PredictOutcome:
    version: int
    rows: int
    predictions: Path
    probabilities: Path


@dataclass
class PipelineResult:
    prepared: PrepareOutcome
    evaluated: EvaluateOutcome
    predicted: PredictOutcome
    timings: dict[str, float] = field(default_factory=dict)


# --- steps ----------------------------------------------------------------------------------------
def ingest_step(
    settings: Settings, *, workers: int, force: bool = False, progress: StageProgress | None = None
) -> PrepareOutcome:
    """Generate demo data if the default folder is empty; ingest if the raw files changed."""
    return prepare(settings, workers=workers, force=force, progress=progress)


def features_step(
    settings: Settings, params: Params, *, workers: int, progress: StageProgress | None = None
) -> FeatureSet:
    features = build_features(
        settings.interim_dir,
        settings.cache_dir,
        encoder=params.image.encoder,
        embedder=params.embedding.encoder,
        max_tokens=params.embedding.max_tokens,
        workers=workers,
        progress=progress,
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
    result = train(features, params, workers=workers, progress=progress)
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
    from core.tracking import store

    step: StageProgress = progress or silent
    features = features or FeatureSet.load(settings.features_dir)
    trained = trained or TrainResult.load(settings.candidate_dir)
    test = features.part("train").rows(trained.split.index[trained.split == "holdout"])

    step("evaluate", 0, 4)
    evaluation = _score(
        trained.classifier, test, params, settings, 1, text_scores=_scores_for(trained, "holdout", test)
    )
    evaluation.save(settings.evaluation_dir)
    save_figures(evaluation, settings.evaluation_dir / "figures")
    behaviour = run_behaviour(trained.classifier)
    write_text(settings.evaluation_dir / "behaviour.json", json.dumps(behaviour.to_dict(), indent=2))
    step("evaluate", 1, 4)

    client = store.connect(settings)
    registry = open_registry(settings, client)
    champion = registry.champion()
    champion_f1 = None
    if champion is not None:
        champion_model = store.load_classifier(settings, version=champion)
        champion_f1 = _score(champion_model, test, params, settings, 1).weighted_f1
    step("evaluate", 2, 4)

    rules = params.promotion
    decision = decide(
        Candidate(
            evaluation.weighted_f1,
            evaluation.zero_f1_classes(rules.zero_f1_min_support),
            behaviour.pass_rate,
        ),
        champion_f1,
        rules,
    )
    report = load_report(settings.interim_dir)
    stats = report.stats if report else {}
    tags = {
        **store.git_tags(settings.root),
        "data.fingerprint": str(stats.get("fingerprint", "unknown")),
        "data.rows": str(len(features.part("train").products)),
        "data.images": str(int(features.part("train").has_image.sum())),
        "data.source": report.source_dir if report else "",
        "gate.promote": str(decision.promote).lower(),
    }
    metrics = {
        **evaluation.metrics,
        **{f"f1_{c}": float(v) for c, v in evaluation.per_class["f1"].items()},
        **{f"precision_{c}": float(v) for c, v in evaluation.per_class["precision"].items()},
        **{f"recall_{c}": float(v) for c, v in evaluation.per_class["recall"].items()},
        "behaviour_pass_rate": behaviour.pass_rate,
        **{f"temperature_{k}": float(v) for k, v in trained.summary.get("temperature", {}).items()},
        **{f"oof_{k}": float(v) for k, v in trained.summary.get("out_of_fold", {}).items()},
        "train_rows": float(trained.summary["rows"]["train"]),
        **{f"time_{k}": float(v) for k, v in trained.summary.get("timings", {}).items()},
    }
    if champion_f1 is not None:
        metrics["champion_weighted_f1"] = champion_f1
    artifact_files = {"training": settings.candidate_dir / "training.json"}
    for name in ("validation_report.json", "validation_report.md"):
        if (settings.interim_dir / name).is_file():
            artifact_files[name] = settings.interim_dir / name
    if settings.params_file.is_file():
        artifact_files["params"] = settings.params_file
    record = store.log_training_run(
        client,
        settings,
        run_name=f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}",
        params={
            **params.flat(),
            "model.encoder": trained.classifier.encoder,
            "model.embedder": trained.classifier.embedder,
            **{f"chosen.{k}": v["best"] for k, v in trained.summary.get("search", {}).items()},
        },
        metrics=metrics,
        tags=tags,
        artifact_dirs={"evaluation": settings.evaluation_dir},
        artifact_files={k: v for k, v in artifact_files.items()},
        classifier_file=classifier_file(settings.candidate_dir),
    )
    step("evaluate", 3, 4)

    client.set_model_version_tag(REGISTERED_MODEL_NAME, str(record.version), "gate", decision.summary[:4900])
    client.set_model_version_tag(
        REGISTERED_MODEL_NAME, str(record.version), "weighted_f1", f"{evaluation.weighted_f1:.4f}"
    )
    from core.tracking.registry import PromotionConflict

    final = champion
    if decision.promote:
        try:
            registry.promote(
                record.version,
                actor=actor,
                reason=decision.summary,
                run_id=record.run_id,
                expected_champion=champion,
            )
            final = record.version
        except PromotionConflict as exc:
            log.warning("%s", exc)
            decision = Decision(False, [str(exc)], decision.candidate_f1, decision.champion_f1)
    if final != record.version:
        registry.set_challenger(record.version, actor=actor, reason=decision.summary, run_id=record.run_id)
    outcome = EvaluateOutcome(evaluation, behaviour, decision, record.run_id, record.version, champion, final)
    write_text(settings.registry_outcome_file, json.dumps(outcome.to_dict(), indent=2))
    step("evaluate", 4, 4)
    return outcome


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
    from core.tracking import store

    step: StageProgress = progress or silent
    client = store.connect(settings)
    version = open_registry(settings, client).champion()
    if version is None:  # checked first: on a fresh project this, not "no features", is what to fix
        raise NoChampionError(
            "No champion model yet: run `python -m core pipeline` (or promote a version on the Models page)."
        )
    features = features or FeatureSet.load(settings.features_dir)
    test = features.part("test")
    if test.products.empty:
        raise RakutenError("The ingested data has no test split (X_test file) to predict.")
    step("predict", 0, len(test.products))
    scores = None
    if fresh is not None and fresh[0] == version:
        classifier = fresh[1].classifier
        scores = _scores_for(fresh[1], "predict", test)
    else:
        classifier = store.load_classifier(settings, version=version)
    image_features, has_image = _image_features_for(classifier, test, settings, workers)
    embeddings = _embeddings_for(classifier, test, settings)
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


def run_pipeline(
    settings: Settings,
    params: Params,
    *,
    workers: int,
    actor: str = "pipeline",
    progress: StageProgress | None = None,
) -> PipelineResult:
    """Every step in order, in this process."""
    timings: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        start = time.perf_counter()
        out = fn()
        timings[name] = time.perf_counter() - start
        return out

    prepared = timed("ingest", lambda: ingest_step(settings, workers=workers, progress=progress))
    features = timed("features", lambda: features_step(settings, params, workers=workers, progress=progress))
    trained = timed(
        "train", lambda: train_step(settings, params, workers=workers, features=features, progress=progress)
    )
    evaluated = timed(
        "evaluate",
        lambda: evaluate_step(
            settings, params, features=features, trained=trained, actor=actor, progress=progress
        ),
    )
    if evaluated.champion_after is None:
        # Else predict_step would tell the user to run the very pipeline that just ran.
        raise NoChampionError(
            f"Version {evaluated.version} was registered but not promoted ({evaluated.decision.summary}), "
            "and there is no champion to predict with. Promote it anyway with `python -m core promote "
            f"{evaluated.version} --reason ...`, or change the data or params.yaml and run again."
        )
    predicted = timed(
        "predict",
        lambda: predict_step(
            settings,
            workers=workers,
            features=features,
            fresh=(evaluated.version, trained),
            progress=progress,
        ),
    )
    return PipelineResult(prepared, evaluated, predicted, timings)


# --- helpers --------------------------------------------------------------------------------------
def _scores_for(trained: TrainResult, name: str, part: FeatureSet) -> np.ndarray | None:
    kept = trained.text_scores.get(name)
    return kept.for_rows(part.products.index) if kept is not None else None


def _score(
    classifier: ProductClassifier,
    part: FeatureSet,
    params: Params,
    settings: Settings,
    workers: int,
    *,
    text_scores: np.ndarray | None = None,
) -> Evaluation:
    image_features, has_image = _image_features_for(classifier, part, settings, workers)
    embeddings = _embeddings_for(classifier, part, settings)
    views = classifier.views(
        part.products, image_features, has_image, text_scores=text_scores, embeddings=embeddings
    )
    return evaluate(
        part.labels,
        views.fused,
        classifier.classes,
        top_k=params.evaluate.top_k,
        views={name: (views.probas[name], views.available[name]) for name in views.probas},
    )


def _image_features_for(
    classifier: ProductClassifier, part: FeatureSet, settings: Settings, workers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Image features in the classifier's own encoding: the feature set's when the encoders match
    (a champion trained with another encoder gets its features from the content cache)."""
    if classifier.encoder == part.encoder:
        return part.image_features, part.has_image
    cache = ImageFeatureCache(settings.cache_dir / "image_features", get_encoder(classifier.encoder))
    has = part.has_image.copy()
    out = np.zeros((len(has), cache.encoder.n_features), dtype=np.float32)
    if has.any():
        paths = part.products.loc[has, "image_path"].astype(str).tolist()
        out[has], ok = cache.features(paths, workers=workers)
        has[has] = ok
    return out, has


def _embeddings_for(classifier: ProductClassifier, part: FeatureSet, settings: Settings) -> np.ndarray | None:
    """Passage embeddings as the classifier's embedding view reads them: the feature set's when made the
    same way, else from the content cache (a champion trained with another text encoder or length)."""
    model = classifier.embedding
    if model is None:
        return None
    if part.embeddings is not None and (part.embedder, part.max_tokens) == (model.encoder, model.max_tokens):
        return part.embeddings
    cache = TextEmbeddingCache(
        settings.cache_dir / "text_embeddings", get_text_encoder(model.encoder, model.max_tokens)
    )
    return cache.features(part.products["passage"].astype(str).tolist())
