"""Evaluation: the challenge metric as scikit-learn computes it, and files that read back identically."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss

from core.models.evaluate import FILES, Evaluation, evaluate

CLASSES = np.array([10, 40, 50, 1280, 2583])


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray, Evaluation]:
    rng = np.random.default_rng(3)
    n = 200
    y = CLASSES[rng.integers(0, len(CLASSES), n)]
    # Informative but imperfect probabilities: the true class gets a random boost.
    logits = rng.normal(size=(n, len(CLASSES)))
    logits[np.arange(n), np.searchsorted(CLASSES, y)] += rng.uniform(0, 2.5, n)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba, evaluate(y, proba, CLASSES, top_k=[2, 3, 5])


def test_metrics_match_scikit_learn(scored: tuple[np.ndarray, np.ndarray, Evaluation]) -> None:
    y, proba, ev = scored
    pred = CLASSES[proba.argmax(1)]
    assert ev.weighted_f1 == pytest.approx(f1_score(y, pred, average="weighted"))
    assert ev.metrics["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert ev.metrics["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert ev.metrics["log_loss"] == pytest.approx(log_loss(y, proba, labels=CLASSES))
    assert ev.metrics["rows"] == len(y)
    assert 0.2 < ev.weighted_f1 < 1.0  # the fixture is neither chance nor perfect


def test_top_k_accuracy_grows_with_k(scored: tuple[np.ndarray, np.ndarray, Evaluation]) -> None:
    _, _, ev = scored
    m = ev.metrics
    assert m["accuracy"] <= m["top2_accuracy"] <= m["top3_accuracy"] <= m["top5_accuracy"]
    assert m["top5_accuracy"] == 1.0  # k = number of classes: always a hit


def test_per_class_and_confusion_shapes(scored: tuple[np.ndarray, np.ndarray, Evaluation]) -> None:
    y, _, ev = scored
    assert ev.per_class.index.tolist() == CLASSES.tolist()
    assert list(ev.per_class.columns) == ["name", "precision", "recall", "f1", "support"]
    assert ev.per_class["support"].sum() == len(y)
    assert ev.per_class.loc[2583, "name"] != "unknown"
    assert ev.confusion.shape == (len(CLASSES), len(CLASSES))
    assert ev.confusion.index.tolist() == ev.confusion.columns.tolist() == CLASSES.tolist()
    assert ev.confusion.to_numpy().sum() == len(y)
    # Rows are true classes: each row sums to that class's support, the diagonal to the hits.
    assert np.array_equal(ev.confusion.sum(axis=1).to_numpy(), ev.per_class["support"].to_numpy())
    assert np.trace(ev.confusion.to_numpy()) == round(ev.metrics["accuracy"] * len(y))


def test_save_load_round_trip(tmp_path: Path, scored: tuple[np.ndarray, np.ndarray, Evaluation]) -> None:
    _, _, ev = scored
    written = ev.save(tmp_path / "evaluation")
    assert sorted(p.name for p in written.values()) == sorted(FILES.values())
    assert all(p.is_file() for p in written.values())
    back = Evaluation.load(tmp_path / "evaluation")
    assert back.metrics == ev.metrics
    pd.testing.assert_frame_equal(back.per_class, ev.per_class, check_dtype=False)
    pd.testing.assert_frame_equal(back.confusion, ev.confusion, check_dtype=False)
    report = (tmp_path / "evaluation" / FILES["report"]).read_text(encoding="utf-8")
    assert f"weighted F1   {ev.weighted_f1:.4f}" in report


def test_view_metrics_only_when_given() -> None:
    y = np.array([10, 40, 50, 10])
    fused = np.eye(5)[[0, 1, 2, 1]]
    text = np.eye(5)[[0, 1, 1, 1]]
    image = np.eye(5)[[0, 0, 2, 0]]
    has_image = np.array([True, True, True, False])
    bare = evaluate(y, fused, CLASSES)
    assert not any(k.startswith(("text_", "image_", "tfidf_", "fused_", "rows_with")) for k in bare.metrics)
    assert set(bare.calibration) == {"fused"}
    views = {"tfidf": (text, np.ones(4, dtype=bool)), "image": (image, has_image)}
    full = evaluate(y, fused, CLASSES, views=views)
    assert full.metrics["image_rows"] == full.metrics["rows_with_image"] == 3
    assert full.metrics["tfidf_weighted_f1"] == full.metrics["text_weighted_f1"]
    assert full.metrics["text_weighted_f1"] == pytest.approx(
        f1_score(y, CLASSES[text.argmax(1)], average="weighted")
    )
    assert full.metrics["fused_weighted_f1_image_rows"] == 1.0
    assert full.metrics["image_weighted_f1"] == pytest.approx(
        f1_score(y[:3], CLASSES[image[:3].argmax(1)], average="weighted")
    )
    # Certain answers: calibration error is the error rate (confidence 1, accuracy below it).
    assert full.metrics["ece"] == pytest.approx(0.25)
    assert full.metrics["tfidf_ece"] == pytest.approx(0.5)  # text is right on 2 of 4
    assert set(full.calibration) == {"fused", "tfidf", "image"}
    assert full.calibration["image"]["rows"] == [3]


def test_zero_f1_classes_respect_min_support() -> None:
    y = np.array([10] * 6 + [40] * 2 + [50] * 4)
    pred_idx = [0] * 6 + [0] * 2 + [2] * 4  # class 40 never predicted right; 1280 and 2583 absent
    ev = evaluate(y, np.eye(5)[pred_idx], CLASSES, top_k=[])
    assert ev.zero_f1_classes() == [40]  # absent classes have no support: not counted
    assert ev.zero_f1_classes(min_support=3) == []
    assert ev.per_class.loc[1280, "support"] == 0


def test_zero_probabilities_do_not_break_log_loss() -> None:
    y = np.array([10, 40])
    proba = np.eye(5)[[1, 1]]  # the true class of row 0 has probability exactly 0
    assert np.isfinite(evaluate(y, proba, CLASSES).metrics["log_loss"])
