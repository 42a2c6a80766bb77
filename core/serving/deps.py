"""FastAPI dependencies: the service state, the served model, who asks (bearer credentials), content types."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from core.config import Settings
from core.identity.access_tokens import looks_like_jwt
from core.identity.guard import ANONYMOUS, Authenticator, Guard
from core.identity.roles import Action, Forbidden, Principal, Unauthenticated, may
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
    authenticator: Authenticator  # bearer credential → principal
    guard: Guard  # the role check and the audit trail of the API's state-changing routes
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


def client_host(request: Request) -> str:
    """The client's address: the audit trail's origin of an API call."""
    return request.client.host if request.client else ""


def credential(request: Request) -> str:
    """The request's bearer credential ('' when it sent none)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def authorize(
    state: ServiceState, request: Request, action: Action, *, route: str, target: str, audit: bool = True
) -> Principal:
    """Who sends the request, allowed to do `action`; else 401 (no credential, or one that does not
    verify) or 403 (a known principal without the role). Refusals are counted by route and reason and,
    with `audit`, written to the audit trail (target: what the request would have changed)."""
    address = client_host(request)
    try:
        who = await _principal(state.authenticator, credential(request))
    except Unauthenticated as exc:
        reason = exc.reason if state.authenticator.configured else "auth_not_configured"
        state.metrics.auth_refusals.labels(route, reason).inc()
        if audit:
            state.guard.refused(ANONYMOUS, action, target=target, detail=reason, origin=address)
        raise ApiError(
            401, reason, _unauthenticated(state, exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    if not may(who, action):
        refusal = str(Forbidden(who, action))
        state.metrics.auth_refusals.labels(route, "forbidden").inc()
        if audit:
            state.guard.refused(who, action, target=target, detail=refusal, origin=address)
        raise ApiError(403, "forbidden", refusal)
    return who


async def may_predict(request: Request, state: State) -> None:
    """With RAKUTEN_API_PREDICT_REQUIRES_TOKEN, /predict* need a valid credential (every role may
    predict). Refusals are counted, not audited: a public route's stray requests are not events."""
    if state.settings.api_predict_requires_token:
        path = request.url.path
        await authorize(state, request, Action.PREDICT, route=path, target=path, audit=False)


async def _principal(authenticator: Authenticator, token: str) -> Principal:
    if looks_like_jwt(token):
        # A token seen before is answered from memory, but a new one may need the provider's keys: a
        # network call (up to its timeout when the provider is down), kept off the event loop.
        return await run_in_threadpool(authenticator.principal, token)
    return authenticator.principal(token)  # a digest lookup or one comparison: inline


def _unauthenticated(state: ServiceState, exc: Unauthenticated) -> str:
    """What the client reads: how to authenticate here."""
    if not state.authenticator.configured:
        return (
            "No credential is accepted yet: create a service token (`python -m core token create NAME "
            "--role operator`), set RAKUTEN_API_ADMIN_TOKEN, or configure the identity provider "
            "(RAKUTEN_OIDC_SERVER_METADATA_URL, RAKUTEN_OIDC_CLIENT_ID)."
        )
    if exc.reason == "unauthenticated":  # nothing was sent
        return (
            "Send 'Authorization: Bearer <token>': a service token or the identity provider's access token."
        )
    return str(exc)


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters (`charset`, `boundary`)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def sent_instead(media: str) -> str:
    """The end of a 415's message: what the request sent instead (or that it named no media type)."""
    return f", not {media}." if media else ": the request has no Content-Type header."


async def require_json(request: Request) -> None:
    media = media_type(request)
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the product as JSON ('Content-Type: application/json')" + sent_instead(media),
        )


async def require_multipart(request: Request) -> None:
    media = media_type(request)
    if media != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Upload the image as multipart/form-data (a form field named 'file')" + sent_instead(media),
        )


async def require_form(request: Request) -> None:
    """A form: multipart (with or without a photo) or URL-encoded (title and description only)."""
    if media_type(request) != "application/x-www-form-urlencoded":
        await require_multipart(request)
