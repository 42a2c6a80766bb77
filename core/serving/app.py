"""The FastAPI application factory: `create_app(settings)`; uvicorn runs it with `--factory`.

Start-up (lifespan) loads the champion, opens the inference log and starts the alias watcher; shutdown
flushes the log. Errors raised by `core` become JSON answers with a status, a reason code and the
request id — never a bare 500 for bad input.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from core.config import Settings, get_settings
from core.errors import ImageDecodeError, ImageTooLargeError, MissingExtraError, UnsupportedImageError
from core.identity.guard import Authenticator, Guard
from core.identity.roles import Action, system
from core.serving.answering import run_texts
from core.serving.batch import BatchPool
from core.serving.coalesce import Coalescer
from core.serving.deps import ApiError, ServiceState
from core.serving.holder import ModelHolder, NoModelError, Refusal, RegistrySource, ServedModel
from core.serving.metrics import LATENCY_BUCKETS, ServiceMetrics
from core.serving.middleware import RequestContext
from core.serving.predictor import NoImageModelError
from core.serving.routes import router
from core.storage.audit import AuditError
from core.storage.inference_log import InferenceLogWriter, open_engine

log = logging.getLogger(__name__)
WARM_TIMEOUT_S: Final = 120  # start-up waits this long at most for the batch processes to load the model
DOCS_ASSETS: Final = "/docs/assets"  # Swagger UI's and ReDoc's scripts and styles, served from a package

DESCRIPTION = """
Classifies Rakuten France products into the challenge's 27 product type codes with the **champion**
model of the MLflow registry. Predict from a title (`/predict`), a photo (`/predict/image`), both
(`/predict/product`) or many products at once (`/predict/batch`, JSON or CSV). Every answer names the
model version that gave it and carries a request id (`X-Request-ID`). Errors are JSON:
`{"detail", "error", "request_id"}`.

Routes that change something (`/admin/reload`, `/feedback`) need `Authorization: Bearer <token>`: a
service token or the identity provider's access token, whose role allows the action; each call, allowed
or refused, is written to the audit trail. A deployment may require a token for predictions too.
"""


def create_app(settings: Settings | None = None, *, source: RegistrySource | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = ServiceMetrics(drift_reports=settings.drift_dir)

    def on_change(old: ServedModel | None, new: ServedModel) -> None:
        if old is not None:
            metrics.model_info.labels(str(old.version), old.run_id or "", old.source).set(0)
        metrics.model_info.labels(str(new.version), new.run_id or "", new.source).set(1)
        metrics.model_loaded.set(1)
        state.pool.warm(new)
        single_threaded_math()  # after loading: only libraries loaded by then can be limited
        settle_heap()
        log.info("serving %s v%s (%s)", new.name, new.version, new.source)

    def on_refused(refusal: Refusal) -> None:
        metrics.model_refusals.labels(refusal.kind).inc()
        detail = f"refused before loading ({refusal.kind}): {refusal.reason}"
        state.guard.record(
            system("api"), Action.LOAD_MODEL, f"model:v{refusal.version}", "", "refused", detail
        )

    holder = ModelHolder(settings, source=source, on_change=on_change, on_refused=on_refused)
    state = ServiceState(settings, holder, metrics, Authenticator(settings), Guard(settings, "api"))
    state.texts = Coalescer(partial(run_texts, state))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics.model_loaded.set(0)
        state.pool = BatchPool(settings.batch_processes).start()
        await run_in_threadpool(holder.start)
        await run_in_threadpool(state.pool.wait_warm, WARM_TIMEOUT_S)
        engine = open_engine(str(settings.inference_log_url), create=False)
        state.engine = engine
        await run_in_threadpool(_open_review_store, state)
        await run_in_threadpool(_open_audit_trail, state)
        state.writer = InferenceLogWriter(
            engine,
            retention_days=settings.inference_log_retention_days,
            on_written=metrics.log_written.inc,
            on_failure=metrics.log_failures.inc,
            on_dropped=metrics.log_dropped.inc,
            inputs_dir=settings.review_inputs_dir,
        ).start()
        stop = threading.Event()
        watcher = _start_alias_watcher(state, stop)
        try:
            yield
        finally:
            stop.set()
            if watcher is not None:
                watcher.join(timeout=5)
            await run_in_threadpool(state.writer.close)
            state.pool.close()
            engine.dispose()

    # /docs and /redoc load their scripts from here, not from a CDN: they work on a machine with no internet
    app = FastAPIOffline(
        title="Rakuten product classification API",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
    )
    app.state.service = state
    app.include_router(router)
    _add_error_handlers(app, metrics)
    app.add_middleware(RequestContext, max_body=settings.api_max_body_bytes, on_error=_count(metrics))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.api_cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID"],
    )
    instrumentator = Instrumentator(
        should_group_status_codes=False,
        excluded_handlers=["/metrics"],
        registry=metrics.registry,
    )
    instrumentator.add(http_metrics.requests(registry=metrics.registry))
    instrumentator.add(http_metrics.latency(buckets=LATENCY_BUCKETS, registry=metrics.registry))
    instrumentator.instrument(app)  # outermost: counts the 413s the body cap answers too
    return app


def single_threaded_math() -> None:
    """One BLAS / OpenMP thread in this process. The service's matrix products are small (a batch × 27
    classes); extra math threads do not speed them up, but after each product they spin waiting for
    more work — on 2 cores that took ~20 % of a 1,000-product batch's CPU (364 → 289 ms) from the others.
    Parallelism comes from the worker and batch processes instead."""
    threadpool_limits(1)


def settle_heap() -> None:
    """Collect, then exclude what is alive now — mostly the model, ~350,000 objects — from the cyclic
    garbage collector's scans: a full collection otherwise pauses a request for ~150 ms now and then.
    Unfrozen first, so an old model's cycles are freed. (Refcounting still frees frozen objects.)"""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _open_review_store(state: ServiceState) -> None:
    """The corrections store POST /feedback writes to, on the inference log's database. The service
    starts without it if that database is unreachable (the first feedback opens it)."""
    try:
        state.review_store()
    except sa.exc.SQLAlchemyError as exc:
        log.warning("corrections store not opened (the first feedback will retry): %s", exc)


def _open_audit_trail(state: ServiceState) -> None:
    """The audit trail's table, made now rather than during the first reload, feedback or refusal. The
    service starts without it if its database is unreachable (each record tries again, and logs)."""
    try:
        _ = state.guard.trail
    except AuditError as exc:
        log.warning("audit trail not opened (each audited action will retry): %s", exc)


def _start_alias_watcher(state: ServiceState, stop: threading.Event) -> threading.Thread | None:
    """Every `api_alias_check_s`, ask the registry where `champion` points (one cheap query) and
    reload only when it moved — never a blind periodic reload."""
    interval = state.settings.api_alias_check_s
    if interval <= 0:
        return None

    def watch() -> None:
        while not stop.wait(interval):
            if state.holder.champion_moved():
                result = state.holder.reload()
                state.metrics.reloads.labels(result.outcome).inc()
                log.info("champion alias moved: %s", result.message)

    thread = threading.Thread(target=watch, name="alias-watcher", daemon=True)
    thread.start()
    return thread


def _count(metrics: ServiceMetrics) -> Any:
    return lambda reason: metrics.errors.labels(reason).inc()


def _add_error_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    def answer(request: Request, status: int, reason: str, detail: Any, headers: Any = None) -> JSONResponse:
        metrics.errors.labels(reason).inc()
        rid = request.scope.get("state", {}).get("request_id")
        return JSONResponse(
            {"detail": detail, "error": reason, "request_id": rid}, status_code=status, headers=headers
        )

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return answer(request, exc.status, exc.reason, exc.detail, exc.headers)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{k: v for k, v in e.items() if k in {"loc", "msg", "type"}} for e in exc.errors()]
        return answer(request, 422, "invalid_request", errors)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        return answer(request, exc.status_code, reason, exc.detail, exc.headers)

    def fixed(status: int, reason: str) -> Any:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return answer(request, status, reason, str(exc))

        return handler

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while answering %s %s", request.method, request.url.path)
        return answer(request, 500, "internal_error", "Internal error: the request id is in the service log.")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ImageTooLargeError, fixed(413, "image_too_large"))
    app.add_exception_handler(UnsupportedImageError, fixed(415, "unsupported_image"))
    app.add_exception_handler(ImageDecodeError, fixed(422, "corrupt_image"))
    app.add_exception_handler(NoImageModelError, fixed(422, "no_image_model"))
    app.add_exception_handler(NoModelError, fixed(503, "no_model"))
    # a served model whose image encoder needs the vision extra, on a host without it
    app.add_exception_handler(MissingExtraError, fixed(503, "missing_extra"))
    app.add_exception_handler(Exception, unexpected)


def _version() -> str:
    try:
        return version("rakuten-mlops")
    except PackageNotFoundError:
        return "0"
