"""Evaluation's decisions and what a run records, without MLflow: plain evaluations in, plain values out."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.validation import ValidationReport
from core.models.behaviour import BehaviourReport, SuiteResult
from core.models.evaluate import Evaluation, evaluate
from core.params import Params, PromotionParams
from core.pipeline import record
from core.tracking.gate import champion_after, refused

CLASSES = np.array([10, 40, 50])


def _evaluation(right: int, rows: int = 60) -> Evaluation:
    """An evaluation on `rows` rows of which the first `right` are answered correctly."""
    y = np.resize(CLASSES, rows)
    predicted = y.copy()
    predicted[right:] = np.roll(CLASSES, 1)[np.searchsorted(CLASSES, y[right:])]
    proba = np.full((rows, len(CLASSES)), 0.1)
    proba[np.arange(rows), np.searchsorted(CLASSES, predicted)] = 0.8
    return evaluate(y, proba, CLASSES)


def _behaviour(passed: int, total: int = 10) -> BehaviourReport:
    return BehaviourReport([SuiteResult("invariance", passed, total)])


def test_a_first_candidate_that_passes_the_checks_is_promoted() -> None:
    decision = record.gate(_evaluation(54), _behaviour(10), None, PromotionParams(min_weighted_f1=0.5))
    assert decision.promote and "no current champion" in decision.reasons
    assert decision.candidate_f1 == pytest.approx(_evaluation(54).weighted_f1)
    assert champion_after(decision, None, 1) == 1


def test_a_candidate_must_beat_the_champion_by_the_margin() -> None:
    candidate = _evaluation(54)
    rules = PromotionParams(min_weighted_f1=0.5, margin=0.01)
    close = record.gate(candidate, _behaviour(10), candidate.weighted_f1 - 0.005, rules)
    assert not close.promote and "does not beat champion" in close.summary
    assert champion_after(close, 3, 4) == 3  # the champion stays
    clear = record.gate(candidate, _behaviour(10), candidate.weighted_f1 - 0.02, rules)
    assert clear.promote and champion_after(clear, 3, 4) == 4


def test_weak_behaviour_or_a_class_never_found_blocks_the_promotion() -> None:
    rules = PromotionParams(min_weighted_f1=0.0, min_behaviour_pass_rate=0.9, zero_f1_min_support=1)
    assert "behavioural checks 70%" in record.gate(_evaluation(60), _behaviour(7), None, rules).summary
    y = np.resize(CLASSES, 60)
    proba = np.full((60, 3), 0.1)
    proba[np.arange(60), np.where(y == 50, 0, np.searchsorted(CLASSES, y))] = 0.8  # 50 always wrong
    never_50 = evaluate(y, proba, CLASSES)
    decision = record.gate(never_50, _behaviour(10), None, rules)
    assert not decision.promote and "1 classes at F1 = 0 (50)" in decision.summary


def test_a_promotion_the_registry_refused_reads_not_promoted() -> None:
    decision = record.gate(_evaluation(54), _behaviour(10), None, PromotionParams(min_weighted_f1=0.5))
    after = refused(decision, "champion moved to v5 meanwhile")
    assert not after.promote and after.reasons == ["champion moved to v5 meanwhile"]
    assert after.candidate_f1 == decision.candidate_f1
    assert champion_after(after, 5, 6) == 5


def test_the_run_records_scores_per_class_and_the_champion_s() -> None:
    evaluation = _evaluation(54)
    summary = {"rows": {"train": 600}, "temperature": {"text": 1.5}, "timings": {"fit": 2.0}}
    metrics = record.run_metrics(evaluation, _behaviour(9), summary, champion_f1=0.8)
    assert metrics["weighted_f1"] == evaluation.weighted_f1
    assert {f"f1_{c}" for c in CLASSES} <= set(metrics) and {f"recall_{c}" for c in CLASSES} <= set(metrics)
    assert metrics["behaviour_pass_rate"] == 0.9 and metrics["champion_weighted_f1"] == 0.8
    assert (metrics["train_rows"], metrics["temperature_text"], metrics["time_fit"]) == (600.0, 1.5, 2.0)
    assert "champion_weighted_f1" not in record.run_metrics(evaluation, _behaviour(9), summary, None)


def test_the_run_records_its_params_data_lineage_and_verdict() -> None:
    params = record.run_params(Params(), "colour_edge", "none", {"search": {"text.C": {"best": 0.5}}})
    assert params["text.C"] == Params().text.C and params["chosen.text.C"] == 0.5
    assert (params["model.encoder"], params["model.embedder"]) == ("colour_edge", "none")
    report = ValidationReport("/data/raw", "official", "2026-12-02T10:00:00", [], {"fingerprint": "abc"})
    decision = record.gate(_evaluation(54), _behaviour(10), None, PromotionParams(min_weighted_f1=0.5))
    tags = record.run_tags({"git.commit": "f00"}, report, rows=600, images=540, decision=decision)
    assert tags == {
        "git.commit": "f00",
        "data.fingerprint": "abc",
        "data.rows": "600",
        "data.images": "540",
        "data.source": "/data/raw",
        "data.corrections": "0",
        "data.corrections_sha256": "",
        "gate.promote": "true",
    }
    report.stats.update(data_version="def", corrections={"corrections": 3, "file_sha256": "0a1b"})
    tags = record.run_tags({}, report, rows=600, images=540, decision=decision)
    assert (tags["data.fingerprint"], tags["data.corrections"], tags["data.corrections_sha256"]) == (
        "def",
        "3",
        "0a1b",
    )
    assert record.run_tags({}, None, rows=0, images=0, decision=decision)["data.fingerprint"] == "unknown"
