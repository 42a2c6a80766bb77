"""Stacked fusion: the views' out-of-fold class probabilities → a multinomial meta-model.

Each view (TF-IDF text, image, …) gives calibrated class probabilities. A product is scored by the
meta-model of the views that could answer it: products with a readable photo by a model over the text
*and* image views, products without one by a model over the text views alone, a photo sent without a
title by the image view alone. Each meta-model is a multinomial logistic regression on the views'
log-probabilities, fitted on out-of-fold probabilities only (a row's own label never reaches the
probabilities it is fitted on), with its regularisation chosen by cross-validated log loss.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from core.models.calibration import log_proba
from core.models.search import Search, search_c

log = logging.getLogger(__name__)

Key = tuple[str, ...]
# lbfgs iterations of a meta-model: on these strongly correlated inputs it converges slowly, and 200
# iterations gave the same choice of C and no worse a held-out log loss than 500 (measured on demo OOF).
_MAX_ITER: Final = 200
_LOG_FLOOR: Final = float(np.log(1e-4))


@dataclass
class StackedFusion:
    """Meta-models by the tuple of views they combine (in `views` order)."""

    classes: np.ndarray
    views: tuple[str, ...]
    models: dict[Key, LogisticRegression] = field(default_factory=dict)
    C: dict[Key, float] = field(default_factory=dict)
    searches: dict[Key, Search] = field(default_factory=dict)

    @property
    def keys(self) -> list[Key]:
        return list(self.models)

    def key_for(self, answered: Sequence[str]) -> Key | None:
        """The meta-model for rows the views `answered` scored: the one over exactly those views, else
        the one over the most of them; None when no meta-model fits (the single view answers)."""
        answered_key = tuple(v for v in self.views if v in answered)
        if answered_key in self.models:
            return answered_key
        subsets = [k for k in self.models if set(k) <= set(answered_key)]
        return max(subsets, key=len) if subsets else None

    def predict_proba(
        self, probas: Mapping[str, np.ndarray | None], available: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """Fused probabilities (rows × `classes`). `probas[view]` is that view's calibrated probabilities
        for every row (None when the view did not run), `available[view]` which rows it really scored."""
        n = len(next(iter(available.values())))
        out = np.zeros((n, len(self.classes)))
        answered = np.zeros(n, dtype=bool)
        groups: dict[Key, list[int]] = {}
        for i in range(n):
            row_views = tuple(v for v in self.views if probas.get(v) is not None and bool(available[v][i]))
            groups.setdefault(row_views, []).append(i)
        for row_views, rows in groups.items():
            at = np.asarray(rows)
            key = self.key_for(row_views)
            if key is not None:
                out[at] = self._meta_proba(key, probas, at)
            elif len(row_views) >= 1:
                out[at] = probas[row_views[0]][at]  # type: ignore[index]
            else:
                continue
            answered[at] = True
        if not answered.all():
            raise ValueError(f"{int((~answered).sum())} rows have no view that can score them")
        return out

    def _meta_proba(self, key: Key, probas: Mapping[str, np.ndarray | None], at: np.ndarray) -> np.ndarray:
        model = self.models[key]
        features = meta_features([probas[v][at] for v in key])  # type: ignore[index]
        out = np.zeros((len(at), len(self.classes)))
        out[:, np.searchsorted(self.classes, model.classes_)] = model.predict_proba(features)
        return out


def meta_features(probas: Sequence[np.ndarray]) -> np.ndarray:
    """The meta-model's input: each view's log-probabilities side by side, floored at log(1e-4) — below
    that a view only says "not this class", and the long tail made the fit slow to converge (3×)."""
    return np.hstack([np.maximum(log_proba(p), _LOG_FLOOR) for p in probas])


def fit_stacking(
    classes: np.ndarray,
    views: tuple[str, ...],
    oof: Mapping[str, np.ndarray],
    available: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    keys: Sequence[Key],
    Cs: float | Sequence[float],
    min_rows: int,
    seed: int,
    workers: int = 1,
) -> StackedFusion:
    """Fit one meta-model per view tuple in `keys`, each on the rows every one of its views scored
    out of fold (at least `min_rows` of them, else that key is skipped); its C is searched by
    cross-validated log loss."""
    fusion = StackedFusion(np.asarray(classes), views)
    for key in keys:
        rows = np.logical_and.reduce([np.asarray(available[v], dtype=bool) for v in key])
        if rows.sum() < min_rows or len(np.unique(y[rows])) < 2:
            log.info("meta-model %s skipped: %d rows (< %d)", "+".join(key), int(rows.sum()), min_rows)
            continue
        x, target = meta_features([oof[v][rows] for v in key]), y[rows]
        found = search_c(
            f"fusion.C.{'_'.join(key)}",
            Cs,
            target,
            _meta_log_loss,
            data=(x, target),
            metric="-log loss",
            seed=seed,
            workers=workers,
            processes=True,
        )
        fusion.searches[key] = found
        fusion.C[key] = found.best
        fusion.models[key] = _fit_meta(found.best, x, target)
    return fusion


def _meta_log_loss(c: float, fit_at: np.ndarray, held_at: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    model = _fit_meta(c, x[fit_at], y[fit_at])
    return -float(log_loss(y[held_at], model.predict_proba(x[held_at]), labels=model.classes_))


def _fit_meta(c: float, x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    with warnings.catch_warnings():  # stopping at _MAX_ITER is deliberate (see there)
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=c, max_iter=_MAX_ITER).fit(x, y)
