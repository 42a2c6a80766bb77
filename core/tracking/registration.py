"""Registering a candidate: the one edge where evaluation's decision meets MLflow — the run recorded,
the version tagged with its verdict, then promoted (compare-and-set) or made challenger."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlflow import MlflowClient

from core.config import REGISTERED_MODEL_NAME, Settings
from core.tracking.gate import Decision, champion_after, refused
from core.tracking.registry import PromotionConflict, Registry
from core.tracking.store import TrainingRun, log_training_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    run_id: str
    version: int
    decision: Decision  # as applied: a promotion refused by the registry reads "not promoted"
    champion_after: int | None


def register_candidate(
    client: MlflowClient,
    registry: Registry,
    settings: Settings,
    training: TrainingRun,
    decision: Decision,
    *,
    champion: int | None,
    actor: str,
) -> Registered:
    """Record the run and register its model; apply the gate's decision against the champion it was
    decided on (`champion`): a champion moved meanwhile refuses the promotion, the version stays
    challenger. The champion never changes unless the decision says so."""
    record = log_training_run(client, settings, training)
    version = str(record.version)
    client.set_model_version_tag(REGISTERED_MODEL_NAME, version, "gate", decision.summary[:4900])
    client.set_model_version_tag(
        REGISTERED_MODEL_NAME, version, "weighted_f1", f"{decision.candidate_f1:.4f}"
    )
    if decision.promote:
        try:
            registry.promote(
                record.version,
                actor=actor,
                reason=decision.summary,
                run_id=record.run_id,
                expected_champion=champion,
            )
        except PromotionConflict as exc:
            log.warning("%s", exc)
            decision = refused(decision, str(exc))
    final = champion_after(decision, champion, record.version)
    if final != record.version:
        registry.set_challenger(record.version, actor=actor, reason=decision.summary, run_id=record.run_id)
    return Registered(record.run_id, record.version, decision, final)
