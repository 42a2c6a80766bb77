"""The hold-out is fixed by each product's id alone; the cross-fitting folds cover every row once."""

import numpy as np
import pandas as pd
import pytest

from core.models.holdout import TrainingDataError, assign_parts, fold_count, folds, holdout_score
from core.params import SplitParams

SPLIT = SplitParams(holdout=0.1, folds=5)


def _data(n: int, n_classes: int = 5, first_pid: int = 10_000) -> tuple[pd.Series, pd.Series]:
    index = pd.RangeIndex(n, name="id")
    pids = pd.Series(np.arange(first_pid, first_pid + n) * 7919, index=index)
    labels = pd.Series(np.arange(n) % n_classes * 10 + 10, index=index)
    return pids, labels


def test_share_held_out_is_close_to_the_parameter() -> None:
    pids, labels = _data(20_000)
    part = assign_parts(pids, labels, SPLIT)
    assert part.index.equals(labels.index) and set(part) == {"train", "holdout"}
    assert (part == "holdout").mean() == pytest.approx(0.1, abs=0.01)


def test_a_product_keeps_its_part_when_the_data_changes() -> None:
    pids, labels = _data(2_000)
    before = assign_parts(pids, labels, SPLIT)
    # A new data version: rows reordered, renumbered, some gone, new products added.
    more_pids, more_labels = _data(500, first_pid=50_000)
    new_pids = pd.concat([pids.iloc[::-1].iloc[100:], more_pids], ignore_index=True)
    new_labels = pd.concat([labels.iloc[::-1].iloc[100:], more_labels], ignore_index=True)
    after = assign_parts(new_pids, new_labels, SPLIT)
    old = dict(zip(pids, before, strict=True))
    for pid, part in zip(new_pids, after, strict=True):
        if pid in old:
            assert part == old[pid]


def test_the_salt_redraws_the_hold_out() -> None:
    ids = np.arange(1000)
    assert np.array_equal(holdout_score(ids, "a"), holdout_score(ids, "a"))
    assert not np.array_equal(holdout_score(ids, "a") < 0.1, holdout_score(ids, "b") < 0.1)
    assert ((holdout_score(ids, "a") >= 0) & (holdout_score(ids, "a") < 1)).all()


def test_a_class_too_small_to_cross_fit_is_refused_with_the_fix() -> None:
    pids, labels = _data(400)
    labels.iloc[:1] = 1180  # one row of a class: it cannot be in two folds
    with pytest.raises(TrainingDataError, match=r"fewer than 2 training rows.*1180.*RAKUTEN_DEMO_ROWS"):
        assign_parts(pids, labels, SPLIT)


def test_folds_shrink_to_the_rarest_class() -> None:
    y = np.repeat([1, 2, 3], [50, 30, 3])
    assert fold_count(y, 5) == 3
    assert fold_count(np.repeat([1, 2], [50, 30]), 5) == 5


def test_too_few_products_for_a_hold_out_is_refused() -> None:
    pids, labels = _data(3, n_classes=1)
    with pytest.raises(TrainingDataError, match="hold-out rows"):
        assign_parts(pids, labels, SplitParams(holdout=0.01, folds=2))


def test_folds_put_every_row_out_of_fold_exactly_once() -> None:
    y = np.repeat([1, 2, 3], [50, 30, 20])
    pairs = folds(y, 5, seed=0)
    held = np.concatenate([h for _, h in pairs])
    assert len(pairs) == 5 and sorted(held.tolist()) == list(range(len(y)))
    for fit_at, held_at in pairs:
        assert not set(fit_at) & set(held_at)
        assert set(y[fit_at]) == {1, 2, 3}  # stratified: every class is fitted in every fold
