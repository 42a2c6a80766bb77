"""Hyper-parameters chosen by cross-validation, not by hand.

`params.yaml` may give a regularisation as one value or as a list of candidates (`text.C`, `image.C`,
`fusion.C`); a list is searched with stratified folds on (a sample of) the training rows, and the best
score wins — ties go to the stronger regularisation (the smaller C). The chosen values are recorded in the
training summary and the MLflow run.

`search_c` fits every candidate on every fold. `search_path` walks the candidates from the strongest
regularisation up, one worker per fold, each fit starting from the previous one's solution (a
regularisation path, as `LogisticRegressionCV` does) and stopping once the score has dropped `PATIENCE`
times in a row past its best: the weakly regularised fits, the slowest, are skipped when they cannot win.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from joblib import delayed
from sklearn.model_selection import StratifiedKFold

from core.compute.cluster import parallel, reported
from core.progress import StageProgress

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

FOLDS: Final = 3
MAX_ROWS: Final = 12_000  # rows a search looks at: enough to rank candidates, cheap on 85,000 products

PATIENCE: Final = 2  # a path stops after this many candidates in a row scored below its best

FitScore = Callable[..., float]
"""`fit_score(C, fit rows, scored rows, *data)` → a score of the model fitted with `C` (higher is better)."""
FitPath = Callable[..., list[float]]
"""`fit_path(Cs ascending, fit rows, scored rows, *data)` → the scores of a prefix of `Cs` (`stop_early`)."""


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
    client: Client | None = None,
    progress: StageProgress | None = None,
) -> Search:
    """The candidate with the best mean score over `FOLDS` stratified folds of at most `max_rows` rows
    (a single candidate is returned without fitting anything). `fit_score` gets `data` after the rows;
    `processes` runs the fits in worker processes (a module-level `fit_score`; big arrays in `data`
    are shared with them through memory maps) or on the Dask cluster of `client`, else on threads;
    on the cluster `progress` hears its fits done (`reported`)."""
    plan = _plan(name, grid, y, metric, seed, max_rows)
    if isinstance(plan, Search):
        return plan
    values, pairs = plan
    on = client if processes else None
    runner = parallel(workers, on, backend="loky" if processes else "threading", return_as="generator")
    jobs = [delayed(fit_score)(c, fit_at, held_at, *data) for c in values for fit_at, held_at in pairs]
    results = list(reported(runner(jobs), on, len(jobs), progress))
    scores = {c: float(np.mean(results[i * len(pairs) : (i + 1) * len(pairs)])) for i, c in enumerate(values)}
    return _chosen(name, scores, metric)


def search_path(
    name: str,
    grid: float | Sequence[float],
    y: np.ndarray,
    fit_path: FitPath,
    *,
    metric: str,
    seed: int,
    data: tuple[Any, ...] = (),
    workers: int = 1,
    max_rows: int = MAX_ROWS,
    client: Client | None = None,
    progress: StageProgress | None = None,
) -> Search:
    """`search_c` along a regularisation path: one job per fold (in worker processes) scores the
    candidates in ascending order until `stop_early` says so; the winner is the best mean score over
    the candidates every fold reached (the others are not reported). On the cluster `progress` hears
    its jobs done."""
    plan = _plan(name, grid, y, metric, seed, max_rows)
    if isinstance(plan, Search):
        return plan
    values, pairs = plan
    runner = parallel(workers, client, return_as="generator")
    jobs = [delayed(fit_path)(values, fit_at, held_at, *data) for fit_at, held_at in pairs]
    paths = list(reported(runner(jobs), client, len(jobs), progress))
    reached = min(len(path) for path in paths)
    scores = {c: float(np.mean([path[i] for path in paths])) for i, c in enumerate(values[:reached])}
    return _chosen(name, scores, metric)


def stop_early(scores: Sequence[float], patience: int = PATIENCE) -> bool:
    """Whether a path scored `scores` so far should stop: its last `patience` scores are all below its
    best (so the best is behind it, on the usual one-peaked curve of score against C)."""
    if len(scores) <= patience:
        return False
    return max(scores[-patience:]) < max(scores[:-patience])


Pairs = list[tuple[np.ndarray, np.ndarray]]


def _plan(
    name: str, grid: float | Sequence[float], y: np.ndarray, metric: str, seed: int, max_rows: int
) -> tuple[list[float], Pairs] | Search:
    """The sorted candidates and `FOLDS` stratified (fit rows, scored rows) pairs over a sample of at
    most `max_rows` rows — or the answer without fitting: the only candidate, or the median one when
    fewer than two classes are left to compare (a class too rare to stratify is left out)."""
    values = candidates(grid)
    if len(values) == 1:
        return Search(name, values[0], {}, metric)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(y), size=min(len(y), max_rows), replace=False))
    labels, counts = np.unique(y[rows], return_counts=True)
    rows = rows[np.isin(y[rows], labels[counts >= FOLDS])]
    if len(np.unique(y[rows])) < 2:
        return Search(name, float(np.median(values)), {}, metric)
    splitter = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    return values, [(rows[a], rows[b]) for a, b in splitter.split(rows, y[rows])]


def _chosen(name: str, scores: dict[float, float], metric: str) -> Search:
    best = max(scores, key=lambda c: (scores[c], -c))
    log.info("%s: C=%g (%s by %d-fold CV: %s)", name, best, metric, FOLDS, scores)
    return Search(name, best, scores, metric)
