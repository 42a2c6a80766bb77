"""Serving fixtures: the session's trained champion, loaded once, and image bytes of each kind."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.config import Settings
from core.data.demo.product_images import product_jpeg, scene_jpeg
from core.models.classifier import ProductClassifier
from core.tracking.store import load_classifier


@pytest.fixture(scope="session")
def classifier(trained_source: Path) -> ProductClassifier:
    """The trained project's champion (text + image model)."""
    model: ProductClassifier = load_classifier(Settings(root=trained_source), alias="champion")
    return model


def picture(
    fmt: str = "JPEG", size: tuple[int, int] = (120, 90), colour: tuple[int, int, int] = (40, 90, 200)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def product_photo(code: int = 2583, seed: int = 0) -> bytes:
    """A photo like the demo's training photos (of class `code`'s look): one the photo guard lets count."""
    return product_jpeg(code, np.random.default_rng(seed))


def unfamiliar_photo(seed: int = 0) -> bytes:
    """A natural-looking scene, unlike every demo training photo: one the photo guard sets aside."""
    return scene_jpeg(np.random.default_rng(seed))
