"""The fixed evaluation hold-out, and the cross-fitting folds of everything else.

A product is held out when a hash of its `productid` (salted by `split.salt`) falls under
`split.holdout`: the assignment depends on the product alone — not on the other rows, the row order or a
random state — so a new data version keeps every old hold-out product out of training, and the champion
and a challenger are scored on rows neither has seen. Every other labelled row is used for training:
cross-fitted (out-of-fold predictions for calibration and stacking), then refitted on all of them.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Final

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from core.errors import RakutenError
from core.params import SplitParams

log = logging.getLogger(__name__)

_SCALE: Final = float(2**64)


class TrainingDataError(RakutenError):
    """The labelled data cannot support a hold-out and cross-fitting."""


def holdout_score(product_ids: pd.Series | np.ndarray, salt: str) -> np.ndarray:
    """A number in [0, 1) per product, fixed by its id and `salt` alone (blake2b, 64 bits)."""
    out = np.empty(len(product_ids), dtype=np.float64)
    prefix = salt.encode("utf-8") + b":"
    for i, pid in enumerate(np.asarray(product_ids).tolist()):
        digest = hashlib.blake2b(prefix + str(pid).encode("utf-8"), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / _SCALE
    return out


def assign_parts(product_ids: pd.Series, labels: pd.Series, params: SplitParams) -> pd.Series:
    """`train` / `holdout` per labelled row (index kept). Raises `TrainingDataError` when a class has
    fewer than two training rows (it cannot be cross-fitted), or when nothing (or everything) is held
    out."""
    held = holdout_score(product_ids.to_numpy(), params.salt) < params.holdout
    part = pd.Series(np.where(held, "holdout", "train"), index=labels.index, name="part")
    n_held = int(held.sum())
    if n_held == 0 or n_held == len(part):
        raise TrainingDataError(
            f"{len(part)} labelled products give {n_held} hold-out rows with split.holdout = "
            f"{params.holdout:g}: add data or use a larger demo set (RAKUTEN_DEMO_ROWS)."
        )
    counts = labels[~held].value_counts()
    rare = counts[counts < 2]
    missing = sorted(set(labels.unique()) - set(counts.index))
    if missing or len(rare):
        few = [*map(str, missing), *(f"{c} ({n})" for c, n in rare.items())]
        raise TrainingDataError(
            f"{len(few)} classes have fewer than 2 training rows outside the hold-out "
            f"({', '.join(few[:5])}): a class needs rows in at least two cross-fitting folds. "
            "Add data or use a larger demo set (RAKUTEN_DEMO_ROWS)."
        )
    return part


def fold_count(y: np.ndarray, wanted: int) -> int:
    """`wanted` folds, or fewer when the rarest class has fewer training rows (each fold must see
    every class); at least 2 (`assign_parts` made sure of it)."""
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if smallest < wanted:
        log.warning(
            "cross-fitting with %d folds instead of split.folds = %d: the rarest class has %d training rows",
            max(2, smallest),
            wanted,
            smallest,
        )
    return max(2, min(wanted, smallest))


def folds(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified `(fit rows, out-of-fold rows)` index pairs covering every row exactly once out of fold."""
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))
