"""FastAPI dependencies: the service state, the served model, admin auth, content-type checks."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from core.config import Settings
from core.serving.batch import BatchPool
from core.serving.holder import ModelHolder, ServedModel
from core.serving.metrics import ServiceMetrics
from core.serving.predictor import ImageLimits
from core.storage.inference_log import ORIGIN_HEADER, ORIGINS, InferenceLogWriter


class ApiError(Exception):
    """An error the API answers on purpose: HTTP status, a reason code, a message for people."""

    def __init__(self, status: int, reason: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.reason, self.detail, self.headers = status, reason, detail, headers


@dataclass
class ServiceState:
    settings: Settings
    holder: ModelHolder
    metrics: ServiceMetrics
    writer: InferenceLogWriter | None = None
    pool: BatchPool = field(default_factory=lambda: BatchPool(0))
    limits: ImageLimits = field(init=False)

    def __post_init__(self) -> None:
        self.limits = ImageLimits.of(self.settings)


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


async def served_model(state: State) -> ServedModel:
    """The model this request will finish on, whatever reloads happen meanwhile (503 if none)."""
    return state.holder.require()


Model = Annotated[ServedModel, Depends(served_model)]


async def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


RequestId = Annotated[str, Depends(request_id)]


async def origin(request: Request) -> str:
    """Who sent the request, from `X-Rakuten-Origin` (console, simulator); any other client: api."""
    said = request.headers.get(ORIGIN_HEADER, "api").strip().lower()
    return said if said in ORIGINS else "api"


Origin = Annotated[str, Depends(origin)]


async def require_admin(request: Request, state: State) -> None:
    """Bearer token from `RAKUTEN_API_ADMIN_TOKEN`, compared in constant time."""
    expected = state.settings.api_admin_token
    if expected is None or not expected.get_secret_value():
        raise ApiError(
            403,
            "admin_disabled",
            "Admin routes are disabled: set RAKUTEN_API_ADMIN_TOKEN for the API and send it as "
            "'Authorization: Bearer <token>'.",
        )
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthenticated",
            "Admin routes need 'Authorization: Bearer <RAKUTEN_API_ADMIN_TOKEN>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), expected.get_secret_value().encode()):
        raise ApiError(403, "forbidden", "The admin token is not valid.")


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters (`charset`, `boundary`)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def require_json(request: Request) -> None:
    media = media_type(request)
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send the product as JSON ('Content-Type: application/json'), not {media or 'no content type'}.",
        )


async def require_multipart(request: Request) -> None:
    media = media_type(request)
    if media != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Upload the image as multipart/form-data (a form field named 'file'), "
            f"not {media or 'no content type'}.",
        )


async def require_form(request: Request) -> None:
    """A form: multipart (with or without a photo) or URL-encoded (title and description only)."""
    if media_type(request) != "application/x-www-form-urlencoded":
        await require_multipart(request)
