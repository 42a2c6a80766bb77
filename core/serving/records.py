"""What the inference log keeps of a request: one `InferenceRecord` per product and its answer, and —
for the predictions review will look at — the photo (`PhotoPolicy`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from core.config import Settings
from core.serving.predictor import Answer, Product
from core.storage.inference_log import TOP_CODES, InferenceRecord


@dataclass(frozen=True, slots=True)
class PhotoPolicy:
    """Which served photos are kept for review: those unlike the model's training photos, those answered
    below `confidence`, those whose text and photo views disagree, and a `share` of the others (a sample
    every worker process agrees on)."""

    confidence: float
    share: float

    @classmethod
    def of(cls, settings: Settings) -> PhotoPolicy:
        return cls(settings.review_confidence, settings.review_keep_share)

    def keeps(
        self,
        request_id: str,
        item: int,
        confidence: float,
        text_code: int | None,
        image_code: int | None,
        *,
        unfamiliar: bool = False,
    ) -> bool:
        if unfamiliar or confidence < self.confidence:
            return True
        if text_code is not None and image_code is not None and text_code != image_code:
            return True
        return sampled(request_id, item, self.share)


def sampled(request_id: str, item: int, share: float) -> bool:
    """Whether a product is in a `share` sample: from a hash of its request id and item, not a random
    draw, so every worker process (and a rerun) decides the same."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{request_id}:{item}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


def records(
    route: str,
    version: int | None,
    products: Sequence[Product],
    answers: Sequence[Answer],
    elapsed: float,
    rid: str,
    origin: str = "api",
    photos: PhotoPolicy | None = None,
) -> list[InferenceRecord]:
    """What the log keeps of one request's products and their answers (`elapsed`: seconds for all).
    Drift references are described by the same function, so both sides compare like with like.
    With `photos`, the photos it keeps ride on their records (the log's writer stores them)."""
    now, latency = datetime.now(UTC), elapsed * 1000
    out = []
    for i, (product, answer) in enumerate(zip(products, answers, strict=True)):
        image = answer.image
        own = {view.view: view.top_k[0].code for view in answer.views if view.top_k}
        text_code, image_code = own.get("text"), own.get("image")
        unfamiliar = None if answer.photo is None else not answer.photo.familiar
        keep = (
            photos is not None
            and product.image is not None
            and photos.keeps(rid, i, answer.probability, text_code, image_code, unfamiliar=bool(unfamiliar))
        )
        out.append(
            InferenceRecord(
                ts=now,
                request_id=rid,
                route=route,
                item=i,
                model_version=version,
                designation=product.designation,
                description_length=len(product.description or ""),
                has_image=image is not None,
                predicted_code=answer.code,
                confidence=answer.probability,
                latency_ms=latency,
                image_width=image.width if image else None,
                image_height=image.height if image else None,
                image_bytes=image.n_bytes if image else None,
                image_brightness=image.brightness if image else None,
                image_saturation=image.saturation if image else None,
                image_red=image.red if image else None,
                image_green=image.green if image else None,
                image_blue=image.blue if image else None,
                origin=origin,
                description=product.description or None,
                text_code=text_code,
                image_code=image_code,
                top_codes=_top_codes(answer),
                photo_unfamiliar=unfamiliar,
                photo=product.image if keep else None,
            )
        )
    return out


def _top_codes(answer: Answer) -> str:
    return orjson.dumps([[r.code, round(r.probability, 4)] for r in answer.top_k[:TOP_CODES]]).decode()
