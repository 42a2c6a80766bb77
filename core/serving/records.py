"""What the inference log keeps of a request: one `InferenceRecord` per product and its answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from core.serving.predictor import Answer, Product
from core.storage.inference_log import InferenceRecord


def records(
    route: str,
    version: int | None,
    products: Sequence[Product],
    answers: Sequence[Answer],
    elapsed: float,
    rid: str,
    origin: str = "api",
) -> list[InferenceRecord]:
    """What the log keeps of one request's products and their answers (`elapsed`: seconds for all).
    Drift references are described by the same function, so both sides compare like with like."""
    now, latency = datetime.now(UTC), elapsed * 1000
    out = []
    for i, (product, answer) in enumerate(zip(products, answers, strict=True)):
        image = answer.image
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
            )
        )
    return out
