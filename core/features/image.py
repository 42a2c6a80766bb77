"""Simple, download-free image features: colour histogram, edge orientations, coarse layout.

The kind of features the challenge's image baselines started from (≈0.24 weighted F1 on the real photos).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image

SIDE: Final = 64
_HSV_BINS: Final = (8, 3, 3)
_ORIENT_BINS: Final = 8
_GRID: Final = 4
N_FEATURES: Final = int(np.prod(_HSV_BINS)) + _ORIENT_BINS * 2 + _GRID * _GRID * 3


def load_small(path: str | Path, side: int = SIDE) -> Image.Image:
    """Open an image and shrink it to `side`×`side` RGB cheaply (JPEG draft decoding)."""
    with Image.open(path) as im:
        im.draft("RGB", (side * 2, side * 2))
        return im.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)


def colour_edge_features(img: Image.Image) -> np.ndarray:
    """Fixed-length vector (`N_FEATURES`) describing colours, edges and layout of an RGB image."""
    small = img if img.size == (SIDE, SIDE) else img.convert("RGB").resize((SIDE, SIDE))
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    hist, _ = np.histogramdd(hsv.reshape(-1, 3), bins=_HSV_BINS, range=((0, 1), (0, 1), (0, 1)))
    colour = hist.ravel() / hsv.shape[0] / hsv.shape[1]

    grey = np.asarray(small.convert("L"), dtype=np.float32) / 255.0
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    angle = (np.arctan2(gy, gx) + np.pi) / (2 * np.pi)
    orient, _ = np.histogram(angle, bins=_ORIENT_BINS, range=(0, 1), weights=magnitude)
    orient = orient / (magnitude.sum() + 1e-6)
    strength, _ = np.histogram(magnitude, bins=_ORIENT_BINS, range=(0, 0.5))
    strength = strength / magnitude.size

    rgb = np.asarray(small, dtype=np.float32) / 255.0
    cell = SIDE // _GRID
    layout = rgb.reshape(_GRID, cell, _GRID, cell, 3).mean(axis=(1, 3)).ravel()
    return np.concatenate([colour, orient, strength, layout]).astype(np.float32)
