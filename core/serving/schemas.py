"""Request and response bodies of the prediction API (pydantic), with the examples OpenAPI shows."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.serving.predictor import Answer

_POOL: dict[str, Any] = {
    "designation": "Piscine tubulaire Intex 366 x 122 cm",
    "description": "Avec pompe de filtration.",
}
_FIGURINE: dict[str, Any] = {
    "designation": "Figurine Funko Pop Star Wars Dark Vador 10 cm",
    "description": "",
}


class ProductText(BaseModel):
    """A product described by its title and, optionally, its description (HTML is fine)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_POOL]})

    designation: str = Field(description="Product title, as on the listing.", examples=[_POOL["designation"]])
    description: str | None = Field(
        default=None, description="Product description (optional, may contain HTML)."
    )


class BatchItem(ProductText):
    id: str | int | None = Field(default=None, description="Your identifier, echoed in the result.")


class BatchRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"products": [_POOL, _FIGURINE]}]})

    products: list[BatchItem] = Field(description="Products to classify, in order.")


class Ranked(BaseModel):
    code: int = Field(description="Product type code (prdtypecode).", examples=[2583])
    category: str = Field(examples=["Swimming pool and spa equipment"])
    probability: float = Field(ge=0, le=1, examples=[0.93])


class ViewPrediction(BaseModel):
    view: Literal["text", "text_embedding", "image"] = Field(
        description="The view: the title + description by TF-IDF, the same text by sentence embedding "
        "(when the model has that view), or the photo."
    )
    top_k: list[Ranked] = Field(description="What this view says on its own: its 3 most likely codes.")
    counted: bool = Field(
        default=True,
        description="False for a photo set aside as unlike the model's training photos: shown, but the "
        "fused answer comes from the text views.",
    )


class PhotoCheck(BaseModel):
    familiar: bool = Field(description="Whether the photo is like the photos the model was trained on.")
    distance: float = Field(
        ge=0, description="Distance to the nearest training photos (normalised encoder features, 0–2)."
    )
    threshold: float = Field(
        description="Past this distance a photo is unfamiliar: nearly every training photo "
        "(`image.novelty.quantile` of them) is closer to the others."
    )
    counted: bool = Field(
        description="Whether the photo's view counted in the answer (an unfamiliar photo does not where "
        "there is a title to fall back on)."
    )


class Prediction(BaseModel):
    code: int = Field(description="Most likely product type code (the fused answer).", examples=[2583])
    category: str = Field(description="Its name.", examples=["Swimming pool and spa equipment"])
    probability: float = Field(ge=0, le=1, examples=[0.93])
    top_k: list[Ranked] = Field(description="The k most likely codes, best first.")
    modalities: list[Literal["text", "image"]] = Field(description="The views that answered.")
    views: list[ViewPrediction] = Field(
        default_factory=list,
        description="Each view's own calibrated answer (not in large text-only batches).",
    )
    photo: PhotoCheck | None = Field(
        default=None, description="How the photo compares with the training photos (when one was sent)."
    )

    @classmethod
    def of(cls, answer: Answer) -> Prediction:
        return cls(
            code=answer.code,
            category=answer.category,
            probability=answer.probability,
            top_k=[Ranked(code=r.code, category=r.category, probability=r.probability) for r in answer.top_k],
            modalities=list(answer.modalities),
            views=[
                ViewPrediction(
                    view=v.view,
                    top_k=[
                        Ranked(code=r.code, category=r.category, probability=r.probability) for r in v.top_k
                    ],
                    counted=v.counted,
                )
                for v in answer.views
            ],
            photo=None if answer.photo is None else PhotoCheck(**asdict(answer.photo)),
        )


class PredictResponse(Prediction):
    model_version: int = Field(description="Registered model version that answered.", examples=[3])
    request_id: str = Field(description="Also in the X-Request-ID header and the logs.")


class BatchResult(Prediction):
    id: str | int | None = None


class BatchResponse(BaseModel):
    model_version: int
    request_id: str
    count: int
    results: list[BatchResult]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    model_version: int | None = None
    detail: str | None = None


class RefusedVersion(BaseModel):
    version: int
    kind: Literal["mismatch", "missing"]
    reason: str
    at: datetime


class ModelInfo(BaseModel):
    name: str
    version: int
    alias: str
    run_id: str | None
    metrics: dict[str, float] = Field(description="Hold-out metrics of the training run.")
    loaded_at: datetime
    source: Literal["registry", "local"] = Field(
        description="registry: loaded from the MLflow registry; local: the saved copy, registry unreachable."
    )
    classes: int
    refused: list[RefusedVersion] = Field(
        default_factory=list,
        description="Registered versions this service refused to load (files unlike their recorded "
        "digests, or none recorded); the model above kept serving.",
    )


class ReloadResponse(BaseModel):
    outcome: Literal["swapped", "unchanged", "failed"]
    version: int | None
    previous: int | None
    detail: str


class Feedback(BaseModel):
    """A reviewer's (or an external tool's) correct class for one served prediction."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"request_id": "5f0c1d9e2b7a4c38a1e6f2d4b9c07e15", "item": 0, "true_code": 2583}]
        }
    )

    request_id: str = Field(
        min_length=1, max_length=64, description="The prediction's request id (its X-Request-ID)."
    )
    item: int = Field(default=0, ge=0, description="The product's position in the request (batches).")
    true_code: int = Field(description="The right product type code (prdtypecode).", examples=[2583])
    reviewer: str | None = Field(
        default=None,
        max_length=64,
        description="The person a service token sends this for (recorded as `service:NAME for <reviewer>`). "
        "A person's own access token is recorded by their name; this field is then ignored.",
        examples=["alice"],
    )
    note: str | None = Field(default=None, max_length=2_000, description="Why, for the audit trail.")


class FeedbackResponse(BaseModel):
    correction_id: int = Field(description="The correction's id in the corrections store.")
    request_id: str
    item: int
    predicted_code: int = Field(description="What the service answered.")
    true_code: int
    verdict: Literal["relabel", "confirm"] = Field(
        description="relabel: the answer was wrong; confirm: it was right."
    )


class ErrorBody(BaseModel):
    """Every error: what went wrong, a reason code for clients and metrics, and the request id."""

    detail: str | list[dict[str, object]]
    error: str = Field(examples=["image_too_large"])
    request_id: str | None = None
