"""Hyper-parameters chosen by cross-validation, not by hand.

`params.yaml` may give a regularisation as one value or as a list of candidates (`text.C`, `image.C`,
`fusion.C`); a list is searched with stratified folds on (a sample of) the training rows, and the best
score wins — ties go to the stronger regularisation (the smaller C). The chosen values are recorded in the
training summary and the MLflow run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedKFold

log = logging.getLogger(__name__)

FOLDS: Final = 3
MAX_ROWS: Final = 20_000  # rows a search looks at: enough to rank candidates, cheap on 85,000 products

FitScore = Callable[..., float]
"""`fit_score(C, fit rows, scored rows, *data)` → a score of the model fitted with `C` (higher is better)."""


@dataclass(frozen=True)
class Search:
    """The candidates tried, their mean cross-validated scores, and the winner."""

    name: str
    best: float
    scores: dict[float, float]
    metric: str

    def to_dict(self) -> dict[str, object]:
        return {
            "best": self.best,
            "metric": self.metric,
            "scores": {f"{c:g}": round(s, 5) for c, s in self.scores.items()},
        }


def candidates(value: float | Sequence[float]) -> list[float]:
    """One value or a list of them, sorted without repeats."""
    return sorted({float(value)} if isinstance(value, int | float) else {float(v) for v in value})


def search_c(
    name: str,
    grid: float | Sequence[float],
    y: np.ndarray,
    fit_score: FitScore,
    *,
    metric: str,
    seed: int,
    data: tuple[Any, ...] = (),
    workers: int = 1,
    processes: bool = False,
    max_rows: int = MAX_ROWS,
) -> Search:
    """The candidate with the best mean score over `FOLDS` stratified folds of at most `max_rows` rows
    (a single candidate is returned without fitting anything). `fit_score` gets `data` after the rows;
    `processes` runs the fits in worker processes (a module-level `fit_score`; big arrays in `data`
    are shared with them through memory maps), else on threads."""
    values = candidates(grid)
    if len(values) == 1:
        return Search(name, values[0], {}, metric)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(y), size=min(len(y), max_rows), replace=False))
    labels, counts = np.unique(y[rows], return_counts=True)
    keep = np.isin(y[rows], labels[counts >= FOLDS])  # a class too rare to stratify is left out
    rows = rows[keep]
    if len(np.unique(y[rows])) < 2:
        best = float(np.median(values))
        return Search(name, best, {}, metric)
    splitter = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    pairs = [(rows[a], rows[b]) for a, b in splitter.split(rows, y[rows])]
    runner = Parallel(n_jobs=max(1, workers), backend="loky" if processes else "threading")
    results = runner(
        delayed(fit_score)(c, fit_at, held_at, *data) for c in values for fit_at, held_at in pairs
    )
    scores = {c: float(np.mean(results[i * len(pairs) : (i + 1) * len(pairs)])) for i, c in enumerate(values)}
    best = max(values, key=lambda c: (scores[c], -c))
    log.info("%s: C=%g (%s by %d-fold CV: %s)", name, best, metric, FOLDS, scores)
    return Search(name, best, scores, metric)
