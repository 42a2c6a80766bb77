"""Online predictions: the one function the API and the console's in-process mode both call.

Takes products as they arrive (title, description, image bytes), enforces the image limits, and returns
ranked answers plus what monitoring needs to know about each input. No HTTP here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

import numpy as np
from PIL import Image

from core.categories import names
from core.config import Settings
from core.errors import ImageTooLargeError, RakutenError
from core.features.image import SIDE, get_encoder, open_image
from core.features.text import model_columns
from core.models.classifier import IMAGE, VIEWS, ProductClassifier, Views

ACCEPTED_FORMATS: Final = frozenset({"JPEG", "PNG", "WEBP"})
ACCEPTED_MEDIA_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/webp"})
Modality = Literal["text", "image"]
ViewName = Literal[
    "text", "text_embedding", "image"
]  # the TF-IDF view, the sentence-embedding view, the photo


class NoImageModelError(RakutenError):
    """An image-only prediction was asked of a model trained without an image part."""


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int

    @classmethod
    def of(cls, settings: Settings) -> ImageLimits:
        return cls(settings.api_max_image_bytes, settings.api_max_image_pixels)


@dataclass(frozen=True, slots=True)
class Product:
    """One product to classify: a title (`designation`), or an image, or both."""

    designation: str | None = None
    description: str = ""
    image: bytes | None = None


@dataclass(frozen=True, slots=True)
class Ranked:
    code: int
    category: str
    probability: float


@dataclass(frozen=True, slots=True)
class ImageStats:
    """Summary of an input image for drift monitoring (colours are means over the thumbnail, 0–1)."""

    width: int
    height: int
    n_bytes: int
    brightness: float
    saturation: float
    red: float
    green: float
    blue: float


@dataclass(frozen=True, slots=True)
class ViewAnswer:
    """What one view says on its own (its calibrated probabilities), beside the fused answer; `counted`
    is False for a photo set aside as unlike the training photos (shown, not in the fused answer)."""

    view: ViewName
    top_k: tuple[Ranked, ...]
    counted: bool = True


@dataclass(frozen=True, slots=True)
class PhotoCheck:
    """How the photo compares with the model's training photos (`core.models.novelty`): its distance to
    them, the distance past which a photo is unfamiliar, and whether its view counted in the answer."""

    familiar: bool
    distance: float
    threshold: float
    counted: bool


@dataclass(frozen=True, slots=True)
class Answer:
    code: int
    category: str
    probability: float
    top_k: tuple[Ranked, ...]
    modalities: tuple[Modality, ...]
    image: ImageStats | None = None
    views: tuple[ViewAnswer, ...] = ()
    photo: PhotoCheck | None = None


def open_upload(data: bytes, limits: ImageLimits, side: int = SIDE) -> Image.Image:
    """A `side`×`side` picture of an uploaded image, or `ImageTooLargeError` / `UnsupportedImageError` /
    `ImageDecodeError` — byte and pixel limits are checked before any pixel is decoded."""
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(
            f"upload ({len(data):,} bytes)", f"over the limit of {limits.max_bytes:,} bytes"
        )
    return open_image(data, side, max_pixels=limits.max_pixels, formats=ACCEPTED_FORMATS)


def image_stats(picture: Image.Image, n_bytes: int) -> ImageStats:
    rgb = np.asarray(picture, dtype=np.float32) / 255.0
    hsv = np.asarray(picture.convert("HSV"), dtype=np.float32) / 255.0
    red, green, blue = (float(v) for v in rgb.reshape(-1, 3).mean(axis=0))
    width, height = picture.info.get("source_size", picture.size)
    return ImageStats(
        width=int(width),
        height=int(height),
        n_bytes=n_bytes,
        brightness=float(rgb.mean()),
        saturation=float(hsv[..., 1].mean()),
        red=red,
        green=green,
        blue=blue,
    )


TextProba = Callable[[Sequence[str], Sequence[str]], np.ndarray]


def predict(
    classifier: ProductClassifier,
    products: Sequence[Product],
    limits: ImageLimits,
    *,
    k: int = 5,
    text_proba: TextProba | None = None,
) -> list[Answer]:
    """Ranked answers, one per product, in order. Products with a title use the text model, fused with
    the image model where an image came too; image-only products use the image model alone.

    Raises `ImageDecodeError` (and kinds) for a bad image, `NoImageModelError` for an image-only
    product when the model has no image part, `ValueError` for a product with neither title nor image.
    `text_proba` replaces the classifier's text scoring for text-only rows (the API's batch pool)."""
    encoder = get_encoder(classifier.encoder)
    pictures = [None if p.image is None else open_upload(p.image, limits, encoder.side) for p in products]
    has_text = np.array([bool(p.designation) for p in products], dtype=bool)
    if not all(has_text[i] or pictures[i] is not None for i in range(len(products))):
        raise ValueError("each product needs a designation (title) or an image")
    if classifier.image is None and not has_text.all():
        raise NoImageModelError(
            "The serving model has no image part, so it cannot classify a picture alone: "
            "send the product title too, or train with images (demo data: --image-rows)."
        )
    features, has_image = classifier.encode_pictures(pictures)
    titles = [p.designation or "" for p in products]
    descriptions = [p.description for p in products]
    if text_proba is not None and has_text.all() and (classifier.image is None or not has_image.any()):
        # The batch pool's text-only path: the fused answer alone (no per-view answers).
        proba = text_proba(titles, descriptions)
        answered: list[tuple[str, ...]] = [("tfidf",)] * len(products)
        views = None
    else:
        views = classifier.views(model_columns(titles, descriptions), features, has_image, has_text=has_text)
        proba = views.fused
        answered = [views.answered(i) for i in range(len(products))]
    out = _answers(classifier, products, pictures, proba, [_modalities(a) for a in answered], k)
    if views is None:
        return out
    return [
        replace(
            answer,
            views=_view_answers(classifier.classes, views, i, answered[i]),
            photo=_photo_check(classifier, views, i),
        )
        for i, answer in enumerate(out)
    ]


def _view_answers(
    codes: np.ndarray, views: Views, row: int, answered: tuple[str, ...]
) -> tuple[ViewAnswer, ...]:
    out = []
    for view in VIEWS:
        proba = views.probas[view]
        counted = view in answered
        shown = counted or (view == IMAGE and views.photo_set_aside(row))
        if proba is not None and shown and view in _VIEW_NAME:
            out.append(ViewAnswer(_VIEW_NAME[view], _ranked(codes, proba[row], _VIEW_K), counted))
    return tuple(out)


def _photo_check(classifier: ProductClassifier, views: Views, row: int) -> PhotoCheck | None:
    guard = classifier.novelty
    if guard is None or views.photo_distance is None or np.isnan(views.photo_distance[row]):
        return None
    return PhotoCheck(
        familiar=not views.photo_unfamiliar(row),
        distance=float(views.photo_distance[row]),
        threshold=guard.threshold,
        counted=not views.photo_set_aside(row),
    )


def _ranked(codes: np.ndarray, proba: np.ndarray, k: int) -> tuple[Ranked, ...]:
    labels = names()
    order = np.argsort(-proba)[:k]
    return tuple(Ranked(int(codes[j]), labels.get(int(codes[j]), "unknown"), float(proba[j])) for j in order)


def _modalities(views: tuple[str, ...]) -> tuple[Modality, ...]:
    return tuple(dict.fromkeys(_MODALITY[v] for v in views if v in _MODALITY))


_VIEW_K: Final = 3
_MODALITY: Final[dict[str, Modality]] = {"tfidf": "text", "embedding": "text", "image": "image"}
_VIEW_NAME: Final[dict[str, ViewName]] = {"tfidf": "text", "embedding": "text_embedding", "image": "image"}


def _answers(
    classifier: ProductClassifier,
    products: Sequence[Product],
    pictures: Sequence[Image.Image | None],
    proba: np.ndarray,
    answered: Sequence[tuple[Modality, ...]],
    k: int,
) -> list[Answer]:
    labels = names()
    codes = [int(c) for c in classifier.classes]
    order = np.argsort(-proba, axis=1)[:, :k]
    out = []
    for i, picture in enumerate(pictures):
        top = tuple(Ranked(codes[j], labels.get(codes[j], "unknown"), float(proba[i, j])) for j in order[i])
        stats = None if picture is None else image_stats(picture, len(products[i].image or b""))
        out.append(Answer(top[0].code, top[0].category, top[0].probability, top, answered[i], stats))
    return out
