"""The label-issue scan: confident learning finds flipped labels in out-of-fold probabilities, identical
products with different labels are grouped, and the review order puts the most suspicious first."""

from pathlib import Path

import numpy as np
import pandas as pd

from core.review.label_issues import (
    COLUMNS,
    ScanResult,
    combine,
    duplicate_conflicts,
    find_label_issues,
    load_scan,
    normalised_key,
    save_scan,
    self_confidence,
)

CLASSES = np.array([10, 40, 50, 2705])


def _probabilities(n: int, flipped: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A model that is right about every row's true class; some labels flipped."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(CLASSES, size=n)
    labels = truth.copy()
    labels[flipped] = [CLASSES[(list(CLASSES).index(c) + 1) % len(CLASSES)] for c in truth[flipped]]
    proba = rng.dirichlet(np.ones(len(CLASSES)), size=n) * 0.3
    proba[np.arange(n), np.searchsorted(CLASSES, truth)] += 0.7
    return labels, proba / proba.sum(axis=1, keepdims=True), truth


def test_confident_learning_finds_the_flipped_labels() -> None:
    flipped = np.arange(0, 400, 20)  # 20 of 400
    labels, proba, truth = _probabilities(400, flipped)
    ids = np.arange(1000, 1400)
    issues = find_label_issues(ids, labels, CLASSES, proba)
    found = set(issues["id"] - 1000)
    right = found & set(flipped)
    assert len(right) >= 15 and len(right) / len(found) >= 0.8  # most flips, few false alarms
    assert issues["self_confidence"].is_monotonic_increasing  # most suspicious first
    first = issues.iloc[0]
    assert first["suggested"] == truth[first["id"] - 1000] and first["label"] == labels[first["id"] - 1000]
    scores = self_confidence(labels, CLASSES, proba)
    assert np.isclose(first["self_confidence"], scores[first["id"] - 1000])


def test_identical_products_with_different_labels_are_grouped() -> None:
    train = pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "designation": [
                "Harry Potter T1",
                "HARRY  potter, t1!",
                "Lego City",
                "Lego City",
                "Élan",
                "elan",
            ],
            "description": ["<p>Poche</p>", "poche", None, "", "x", "x"],
            "prdtypecode": [10, 2705, 1280, 1280, 40, 50],
        }
    )
    assert normalised_key(train["designation"], train["description"]).iloc[0] == "harry potter t1 poche"
    found = duplicate_conflicts(train)
    assert sorted(found["id"]) == [1, 2, 5, 6]  # the Lego pair agrees: not a conflict
    assert found.groupby("group")["id"].apply(sorted).tolist() in ([[1, 2], [5, 6]], [[5, 6], [1, 2]])
    assert set(found["group_labels"]) == {"10,2705", "40,50"}


def test_review_order_keeps_groups_together_after_stronger_doubts(tmp_path: Path) -> None:
    issues = pd.DataFrame(
        {
            "id": [7, 8],
            "reason": "label_issue",
            "label": [10, 40],
            "suggested": [40, 10],
            "self_confidence": [0.01, 0.3],
            "suggested_proba": [0.9, 0.6],
        }
    )
    duplicates = pd.DataFrame(
        {
            "id": [1, 2, 8],
            "reason": "duplicate",
            "label": [10, 2705, 40],
            "group": [0, 0, 1],
            "group_labels": ["10,2705", "10,2705", "10,40"],
        }
    )
    oof = pd.DataFrame(
        {"suggested": [10, 10], "self_confidence": [0.2, 0.9], "suggested_proba": [0.5, 0.9]},
        index=pd.Index([1, 2], name="id"),
    )
    ordered = combine(issues, duplicates, oof)
    assert list(ordered.columns) == list(COLUMNS)
    assert ordered["id"].tolist() == [7, 1, 2, 8]  # 8 once (as a label issue); the group at its weakest
    assert ordered["rank"].tolist() == [0, 1, 2, 3]
    save_scan(ScanResult(ordered, {"rows_scanned": 4}), tmp_path / "scan.parquet")
    loaded = load_scan(tmp_path / "scan.parquet")
    assert loaded is not None and loaded.meta == {"rows_scanned": 4}
    assert loaded.issues["id"].tolist() == [7, 1, 2, 8]
    assert load_scan(tmp_path / "none.parquet") is None
