"""What evaluation decides and records, as pure functions: the gate's verdict on a candidate, where the
aliases end, and the params, metrics and tags of its MLflow run. No MLflow here (`core.tracking`
writes them): every rule is testable with plain objects."""

from __future__ import annotations

from typing import Any

from core.data.validation import ValidationReport
from core.models.behaviour import BehaviourReport
from core.models.evaluate import Evaluation
from core.params import Params, PromotionParams
from core.tracking.gate import Candidate, Decision, decide


def gate(
    evaluation: Evaluation, behaviour: BehaviourReport, champion_f1: float | None, rules: PromotionParams
) -> Decision:
    """The promotion gate's decision for a candidate scored on the hold-out (and the champion re-scored
    on the same rows: `champion_f1`, None without a champion)."""
    candidate = Candidate(
        evaluation.weighted_f1, evaluation.zero_f1_classes(rules.zero_f1_min_support), behaviour.pass_rate
    )
    return decide(candidate, champion_f1, rules)


def run_params(params: Params, encoder: str, embedder: str, summary: dict[str, Any]) -> dict[str, Any]:
    """The run's params: params.yaml flattened, the encoders the classifier carries, the values the
    search chose (`chosen.<name>`)."""
    chosen = {f"chosen.{k}": v["best"] for k, v in summary.get("search", {}).items()}
    return {**params.flat(), "model.encoder": encoder, "model.embedder": embedder, **chosen}


def run_metrics(
    evaluation: Evaluation, behaviour: BehaviourReport, summary: dict[str, Any], champion_f1: float | None
) -> dict[str, float]:
    """The run's metrics: the hold-out scores (overall, per class, per view), behaviour, calibration
    temperatures, out-of-fold scores, training rows and step timings (from the training summary), and
    the champion's score on the same rows when there was one."""
    per_class = evaluation.per_class
    metrics = {
        **evaluation.metrics,
        **{f"f1_{c}": float(v) for c, v in per_class["f1"].items()},
        **{f"precision_{c}": float(v) for c, v in per_class["precision"].items()},
        **{f"recall_{c}": float(v) for c, v in per_class["recall"].items()},
        "behaviour_pass_rate": behaviour.pass_rate,
        **{f"temperature_{k}": float(v) for k, v in summary.get("temperature", {}).items()},
        **{f"oof_{k}": float(v) for k, v in summary.get("out_of_fold", {}).items()},
        "train_rows": float(summary["rows"]["train"]),
        **{f"time_{k}": float(v) for k, v in summary.get("timings", {}).items()},
    }
    if champion_f1 is not None:
        metrics["champion_weighted_f1"] = champion_f1
    return metrics


def run_tags(
    git: dict[str, str],
    report: ValidationReport | None,
    rows: int,
    images: int,
    decision: Decision,
) -> dict[str, str]:
    """The run's tags: the code (git), the data it was trained on (fingerprint, rows, photos, source
    folder, from the validation report) and the gate's verdict."""
    stats = report.stats if report else {}
    return {
        **git,
        "data.fingerprint": str(stats.get("data_version", stats.get("fingerprint", "unknown"))),
        "data.corrections": str(stats.get("corrections", {}).get("corrections", 0)),
        "data.corrections_sha256": str(stats.get("corrections", {}).get("file_sha256", "")),
        "data.rows": str(rows),
        "data.images": str(images),
        "data.source": report.source_dir if report else "",
        "gate.promote": str(decision.promote).lower(),
    }
