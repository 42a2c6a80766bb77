"""Where the pipeline's steps write, derived from Settings — a module of its own so that readers (the
console, the API, the drift report) find the files without importing the training code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import Settings


@dataclass(frozen=True)
class Layout:
    """Where each step writes (all derived from Settings)."""

    features: Path
    candidate: Path
    evaluation: Path
    registry_outcome: Path
    predictions: Path
    probabilities: Path
    lock: Path

    @classmethod
    def of(cls, settings: Settings) -> Layout:
        return cls(
            features=settings.processed / "features",
            candidate=settings.models / "candidate",
            evaluation=settings.reports / "evaluation",
            registry_outcome=settings.reports / "registry.json",
            predictions=settings.processed / "predictions.csv",
            probabilities=settings.processed / "probabilities.csv",
            lock=settings.models / ".registry.lock",
        )
