"""Model files: written atomically as plain pickles; files from before (joblib) still load."""

import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest

from core.io import load_model, save_model


def test_a_model_round_trips_and_a_joblib_file_still_loads(tmp_path: Path) -> None:
    model = {"coef": np.arange(12.0).reshape(3, 4), "vocabulary": {f"w{i}": i for i in range(1000)}}
    save_model(model, tmp_path / "m.pkl")
    joblib.dump(model, tmp_path / "old.joblib")
    for file in ("m.pkl", "old.joblib"):
        loaded = load_model(tmp_path / file)
        assert np.array_equal(loaded["coef"], model["coef"]) and loaded["vocabulary"] == model["vocabulary"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pkl", "old.joblib"]  # no temporary left


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "m.pkl"
    save_model([1, 2], target)
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        save_model(lambda: None, target)  # a lambda cannot be pickled
    assert load_model(target) == [1, 2] and [p.name for p in tmp_path.iterdir()] == ["m.pkl"]
