"""Static figures drawn from evaluation data (PNG artifacts for MLflow; the console draws its own)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.io import atomic_path
from core.models.evaluate import Evaluation

# Lazy imports: matplotlib (~0.5 s) loads when figures are drawn, with its non-interactive backend chosen
# first.


def save_figures(evaluation: Evaluation, folder: Path) -> dict[str, Path]:
    """`confusion_matrix.png` (row-normalized), `per_class_f1.png` and `calibration.png` (reliability
    diagram of the fused answer and each view) in `folder`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = {
        "confusion": folder / "confusion_matrix.png",
        "per_class": folder / "per_class_f1.png",
        "calibration": folder / "calibration.png",
    }

    counts = evaluation.confusion.to_numpy(dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    codes = [str(c) for c in evaluation.confusion.index]
    fig, ax = plt.subplots(figsize=(9, 8), dpi=100)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(codes)), codes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(codes)), codes, fontsize=7)
    ax.set_xlabel("predicted code")
    ax.set_ylabel("true code")
    ax.set_title(f"Confusion matrix (share of each true class) — weighted F1 {evaluation.weighted_f1:.3f}")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    with atomic_path(out["confusion"]) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

    per_class = evaluation.per_class.sort_values("f1")
    fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
    ax.barh(
        [f"{c} {n[:28]}" for c, n in zip(per_class.index, per_class["name"], strict=True)], per_class["f1"]
    )
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("F1 per class (hold-out)")
    fig.tight_layout()
    with atomic_path(out["per_class"]) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, curve in evaluation.calibration.items():
        ece = evaluation.metrics.get("ece" if name == "fused" else f"{name}_ece", float("nan"))
        ax.plot(curve["confidence"], curve["accuracy"], marker="o", label=f"{name} (ECE {ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Calibration on the hold-out")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_path(out["calibration"]) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
