"""Evaluation on the hold-out: the challenge metric (weighted F1) and everything needed to read it.

Results are data — `metrics.json`, `per_class.csv`, `confusion.csv`, `classification_report.txt` —
and the figures are drawn from that data (`core.models.figures`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)

from core.categories import names
from core.io import atomic_path, write_text
from core.models.calibration import expected_calibration_error, reliability

FILES: Final = {
    "metrics": "metrics.json",
    "calibration": "calibration.json",
    "per_class": "per_class.csv",
    "confusion": "confusion.csv",
    "report": "classification_report.txt",
}


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    per_class: pd.DataFrame  # index code: name, precision, recall, f1, support
    confusion: pd.DataFrame  # index true code, columns predicted code, counts
    calibration: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # fused + each view

    @property
    def weighted_f1(self) -> float:
        return self.metrics["weighted_f1"]

    def zero_f1_classes(self, min_support: int = 1) -> list[int]:
        """Classes never predicted right, among those with at least `min_support` evaluation rows."""
        present = self.per_class[self.per_class["support"] >= max(min_support, 1)]
        return [int(c) for c in present.index[present["f1"] == 0]]

    def save(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        out = {name: folder / file for name, file in FILES.items()}
        write_text(out["metrics"], json.dumps(self.metrics, indent=2))
        write_text(out["calibration"], json.dumps(self.calibration, indent=2))
        for key, frame in (("per_class", self.per_class), ("confusion", self.confusion)):
            with atomic_path(out[key]) as tmp:
                frame.to_csv(tmp)
        write_text(out["report"], self.report_text())
        return out

    def report_text(self) -> str:
        rows = [
            f"{code:>5}  {r['name'][:34]:<34} {r['precision']:9.3f} {r['recall']:9.3f} "
            f"{r['f1']:9.3f} {int(r['support']):9d}"
            for code, r in self.per_class.iterrows()
        ]
        head = f"{'code':>5}  {'category':<34} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}"
        m = self.metrics
        tail = [
            "",
            f"accuracy      {m['accuracy']:.4f}",
            f"macro F1      {m['macro_f1']:.4f}",
            f"weighted F1   {m['weighted_f1']:.4f}  (challenge metric)",
        ]
        return "\n".join([head, *rows, *tail]) + "\n"

    @classmethod
    def load(cls, folder: Path) -> Evaluation:
        metrics = json.loads((folder / FILES["metrics"]).read_text(encoding="utf-8"))
        per_class = pd.read_csv(folder / FILES["per_class"], index_col=0)
        confusion = pd.read_csv(folder / FILES["confusion"], index_col=0)
        confusion.columns = confusion.columns.astype(int)
        calibration_file = folder / FILES["calibration"]
        calibration = (
            json.loads(calibration_file.read_text(encoding="utf-8")) if calibration_file.is_file() else {}
        )
        return cls(metrics, per_class, confusion, calibration)


def evaluate(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: np.ndarray,
    *,
    top_k: list[int] | tuple[int, ...] = (3, 5),
    views: Mapping[str, tuple[np.ndarray | None, np.ndarray]] | None = None,
) -> Evaluation:
    """Score fused probabilities and, when given, each view on the rows it answered:
    `views[name] = (probabilities or None, rows it scored)`. Calibration (ECE and the reliability
    curve) is reported for the fused answer and every view."""
    y_true = np.asarray(y_true)
    target = np.searchsorted(classes, y_true)
    known = np.isin(y_true, classes)
    pred = classes[proba.argmax(axis=1)]
    metrics: dict[str, float] = {
        "weighted_f1": float(f1_score(y_true, pred, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(y_true, pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, pred)),
        "log_loss": float(log_loss(y_true, _normalized(proba), labels=classes)),
        "ece": expected_calibration_error(proba[known], target[known]),
        "rows": float(len(y_true)),
    }
    calibration = {"fused": reliability(proba[known], target[known]).to_dict()}
    order = np.argsort(-proba, axis=1)
    for k in top_k:
        hits = (classes[order[:, :k]] == y_true[:, None]).any(axis=1)
        metrics[f"top{k}_accuracy"] = float(hits.mean())
    for view, (view_proba, answered) in (views or {}).items():
        rows = np.asarray(answered, dtype=bool) & known
        metrics[f"{view}_rows"] = float(rows.sum())
        if view_proba is None or not rows.any():
            continue
        metrics[f"{view}_weighted_f1"] = _wf1(y_true[rows], classes[view_proba[rows].argmax(1)])
        metrics[f"{view}_ece"] = expected_calibration_error(view_proba[rows], target[rows])
        metrics[f"fused_weighted_f1_{view}_rows"] = _wf1(y_true[rows], pred[rows])
        calibration[view] = reliability(view_proba[rows], target[rows]).to_dict()
    # Names kept from before the views had names (run comparisons across versions read them).
    if "tfidf_weighted_f1" in metrics:
        metrics["text_weighted_f1"] = metrics["tfidf_weighted_f1"]
    if "image_weighted_f1" in metrics:
        metrics["image_weighted_f1_image_rows"] = metrics["image_weighted_f1"]
        metrics["rows_with_image"] = metrics["image_rows"]
        text_proba = (views or {}).get("tfidf", (None, None))[0]
        if text_proba is not None:  # what fusion must beat where there is a photo
            rows = np.asarray(views["image"][1], dtype=bool) & known  # type: ignore[index]
            metrics["text_weighted_f1_image_rows"] = _wf1(y_true[rows], classes[text_proba[rows].argmax(1)])

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, pred, labels=classes, zero_division=0
    )
    per_class = pd.DataFrame(
        {
            "name": [names().get(int(c), "unknown") for c in classes],
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
        },
        index=pd.Index(classes.astype(int), name="code"),
    )
    confusion = pd.DataFrame(
        confusion_matrix(y_true, pred, labels=classes),
        index=pd.Index(classes.astype(int), name="true"),
        columns=classes.astype(int),
    )
    return Evaluation(metrics, per_class, confusion, calibration)


def _normalized(proba: np.ndarray) -> np.ndarray:
    clipped = np.clip(proba, 1e-12, 1.0)
    return clipped / clipped.sum(axis=1, keepdims=True)


def _wf1(y: np.ndarray, pred: np.ndarray) -> float:
    return float(f1_score(y, pred, average="weighted", zero_division=0))


def sklearn_report(y_true: np.ndarray, pred: np.ndarray) -> str:
    """scikit-learn's text report, for people who expect that exact layout."""
    return str(classification_report(y_true, pred, zero_division=0, digits=4))
