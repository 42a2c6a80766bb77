"""Simple image features: fixed length, deterministic, sensitive to what is in the picture."""

import numpy as np
from PIL import Image

from core.features.image import N_FEATURES, colour_edge_features, load_small


def test_features_have_fixed_length_and_are_deterministic(tmp_path) -> None:
    img = Image.new("RGB", (500, 500), "white")
    img.paste((200, 30, 30), (100, 100, 300, 400))
    img.save(tmp_path / "a.jpg")
    a = colour_edge_features(load_small(tmp_path / "a.jpg"))
    b = colour_edge_features(load_small(tmp_path / "a.jpg"))
    assert a.shape == (N_FEATURES,)
    assert np.array_equal(a, b)
    assert np.isfinite(a).all()


def test_different_pictures_give_different_features() -> None:
    red = Image.new("RGB", (64, 64), (220, 20, 20))
    blue_stripes = Image.new("RGB", (64, 64), (20, 20, 220))
    for x in range(0, 64, 8):
        blue_stripes.paste((255, 255, 255), (x, 0, x + 4, 64))
    a, b = colour_edge_features(red), colour_edge_features(blue_stripes)
    assert np.abs(a - b).sum() > 1.0
