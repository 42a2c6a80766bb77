"""Serving fixtures: the session's trained champion, loaded once, and image bytes of each kind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from core.config import Settings
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
