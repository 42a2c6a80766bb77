"""FastAPI dependencies: the service state, the served model, admin and reviewer auth, content types."""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from pydantic import SecretStr

from core.config import Settings
from core.serving.batch import BatchPool
from core.serving.coalesce import Coalescer
from core.serving.holder import ModelHolder, ServedModel
from core.serving.metrics import ServiceMetrics
from core.serving.predictor import Answer, ImageLimits
from core.serving.records import PhotoPolicy
from core.storage.corrections import CorrectionsStore
from core.storage.inference_log import ORIGIN_HEADER, ORIGINS, InferenceLogWriter

if TYPE_CHECKING:
    from core.serving.answering import Asked


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
    engine: sa.Engine | None = None  # the inference log's database (the corrections table is there too)
    corrections: CorrectionsStore | None = None
    pool: BatchPool = field(default_factory=lambda: BatchPool(0))
    texts: Coalescer[Asked, Answer] = field(init=False)  # `/predict` requests together (set by the app)
    batches: int = 0  # `/predict/batch` requests being scored in this process now
    limits: ImageLimits = field(init=False)
    photos: PhotoPolicy = field(init=False)
    _opening: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.limits = ImageLimits.of(self.settings)
        self.photos = PhotoPolicy.of(self.settings)

    def review_store(self) -> CorrectionsStore:
        """The corrections store: opened at start-up, or now if the database was unreachable then.
        Raises `sqlalchemy.exc.SQLAlchemyError` while it still is."""
        if self.corrections is None:
            with self._opening:
                if self.corrections is None:
                    if self.engine is None:
                        raise ApiError(503, "starting", "The service is starting: try again in a moment.")
                    self.corrections = CorrectionsStore(self.engine)
        return self.corrections


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
    expected = _configured(state.settings.api_admin_token)
    if not expected:
        raise ApiError(
            403,
            "admin_disabled",
            "Admin routes are disabled: set RAKUTEN_API_ADMIN_TOKEN for the API and send it as "
            "'Authorization: Bearer <token>'.",
        )
    token = _bearer(request, "Admin routes need 'Authorization: Bearer <RAKUTEN_API_ADMIN_TOKEN>'.")
    if not _matches(token, expected):
        raise ApiError(403, "forbidden", "The admin token is not valid.")


def check_reviewer(request: Request, s: Settings) -> None:
    """Bearer token from `RAKUTEN_REVIEW_TOKEN` or `RAKUTEN_API_ADMIN_TOKEN`, compared in constant time."""
    expected = _configured(s.review_token, s.api_admin_token)
    if not expected:
        raise ApiError(
            403,
            "review_disabled",
            "Review routes are disabled: set RAKUTEN_REVIEW_TOKEN (or RAKUTEN_API_ADMIN_TOKEN) for the API "
            "and send it as 'Authorization: Bearer <token>'.",
        )
    token = _bearer(request, "Review routes need 'Authorization: Bearer <RAKUTEN_REVIEW_TOKEN>'.")
    if not _matches(token, expected):
        raise ApiError(403, "forbidden", "The reviewer token is not valid.")


def _configured(*secrets: SecretStr | None) -> list[bytes]:
    return [s.get_secret_value().encode() for s in secrets if s is not None and s.get_secret_value()]


def _bearer(request: Request, needs: str) -> bytes:
    """The request's bearer token, or 401 saying what to send."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", needs, headers={"WWW-Authenticate": "Bearer"})
    return token.strip().encode()


def _matches(token: bytes, expected: list[bytes]) -> bool:
    """Compared with every accepted token (no early exit: the time says nothing about which matched)."""
    results = [hmac.compare_digest(token, candidate) for candidate in expected]
    return any(results)


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
