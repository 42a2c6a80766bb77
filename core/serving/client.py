"""Two ways to get predictions with one interface: `ApiBackend` (the HTTP service) and
`InProcessBackend` (the same `predict` function, in this process). The console uses whichever is
available and says which; both return `Outcome`s made of `predictor.Answer`s, and both end in the
inference log with their origin (the API logs what it answers; the in-process backend logs itself).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from core.errors import RakutenError
from core.serving.batch_csv import BatchRow
from core.serving.holder import ServedModel
from core.serving.predictor import (
    Answer,
    ImageLimits,
    PhotoCheck,
    Product,
    Ranked,
    ViewAnswer,
    predict,
)
from core.serving.records import PhotoPolicy, records
from core.storage.inference_log import ORIGIN_HEADER, InferenceLogWriter

BackendName = Literal["api", "in-process"]


class ApiUnavailable(RakutenError):
    """The prediction service cannot be reached, or failed on its side (5xx)."""


class ApiRejected(RakutenError):
    """The service refused the request (4xx): `status`, its reason code, and its message."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


@dataclass(frozen=True)
class Outcome:
    answers: list[Answer]
    model_version: int
    backend: BackendName
    seconds: float
    ids: list[Any] | None = None


class Backend(Protocol):
    name: BackendName

    def predict(self, product: Product, *, k: int = 5, request_id: str | None = None) -> Outcome: ...

    def predict_batch(self, rows: Sequence[BatchRow], *, k: int = 5) -> Outcome: ...


class InProcessBackend:
    """Predicts with a loaded `ServedModel`, through `core.serving.predictor.predict`."""

    name: BackendName = "in-process"

    def __init__(
        self,
        model: ServedModel,
        limits: ImageLimits,
        *,
        writer: InferenceLogWriter | None = None,
        origin: str = "console",
        photos: PhotoPolicy | None = None,
    ) -> None:
        self.model, self.limits = model, limits
        self.writer, self.origin, self.photos = writer, origin, photos

    def predict(self, product: Product, *, k: int = 5, request_id: str | None = None) -> Outcome:
        start = time.perf_counter()
        answers = predict(self.model.classifier, [product], self.limits, k=k)
        elapsed = time.perf_counter() - start
        self._log("product" if product.image else "text", [product], answers, elapsed, request_id)
        return Outcome(answers, self.model.version, self.name, elapsed)

    def predict_batch(self, rows: Sequence[BatchRow], *, k: int = 5) -> Outcome:
        start = time.perf_counter()
        products = [Product(r.designation, r.description) for r in rows]
        answers = predict(self.model.classifier, products, self.limits, k=k)
        elapsed = time.perf_counter() - start
        self._log("batch", products, answers, elapsed, None)
        ids = [r.id for r in rows]
        return Outcome(answers, self.model.version, self.name, elapsed, ids)

    def _log(
        self,
        route: str,
        products: Sequence[Product],
        answers: Sequence[Answer],
        elapsed: float,
        rid: str | None,
    ) -> None:
        """Into the inference log like the API's answers (queued: a prediction never waits for it)."""
        if self.writer is not None:
            rid = rid or f"{self.origin}-{uuid.uuid4().hex[:16]}"
            self.writer.record(
                records(route, self.model.version, products, answers, elapsed, rid, self.origin, self.photos)
            )


class ApiBackend:
    """Calls the prediction service. Batches larger than `max_batch` go as several requests."""

    name: BackendName = "api"

    def __init__(
        self,
        url: str,
        *,
        max_batch: int = 1000,
        timeout: float = 30.0,
        origin: str | None = None,
        token: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.max_batch = max_batch
        self.timeout = timeout
        self.headers = {ORIGIN_HEADER: origin} if origin else {}  # the API logs it with each answer
        if token:  # sent with every call: a deployment may require a token for predictions too
            self.headers["Authorization"] = f"Bearer {token}"

    def model_info(self, *, timeout: float = 2.0) -> dict[str, Any]:
        """`GET /model`: also the reachability probe (a short timeout: the page must not hang)."""
        info: dict[str, Any] = self._call("GET", "/model", timeout=timeout)
        return info

    def reload(self, token: str) -> dict[str, Any]:
        """`POST /admin/reload`: the API swaps to the current champion (a no-op when it serves it)."""
        headers = {"Authorization": f"Bearer {token}"}
        result: dict[str, Any] = self._call("POST", "/admin/reload", headers=headers)
        return result

    def predict(self, product: Product, *, k: int = 5, request_id: str | None = None) -> Outcome:
        """One product. `request_id` is sent as `X-Request-ID` (the API logs it with the prediction)."""
        start = time.perf_counter()
        params = {"k": k}
        headers = {"X-Request-ID": request_id} if request_id else None
        if product.image is None:
            text = {"designation": product.designation, "description": product.description}
            body = self._call("POST", "/predict", params=params, json=text, headers=headers)
        elif not product.designation:
            body = self._call(
                "POST",
                "/predict/image",
                params=params,
                files={"file": ("upload", product.image)},
                headers=headers,
            )
        else:
            body = self._call(
                "POST",
                "/predict/product",
                params=params,
                data={"designation": product.designation, "description": product.description},
                files={"file": ("upload", product.image)},
                headers=headers,
            )
        return Outcome([_answer(body)], int(body["model_version"]), self.name, time.perf_counter() - start)

    def predict_batch(self, rows: Sequence[BatchRow], *, k: int = 5) -> Outcome:
        start = time.perf_counter()
        answers: list[Answer] = []
        version = 0
        for i in range(0, len(rows), self.max_batch):
            chunk = rows[i : i + self.max_batch]
            products = [{"designation": r.designation, "description": r.description} for r in chunk]
            body = self._call("POST", "/predict/batch", params={"k": k}, json={"products": products})
            answers += [_answer(item) for item in body["results"]]
            version = int(body["model_version"])
        ids = [r.id for r in rows]
        return Outcome(answers, version, self.name, time.perf_counter() - start, ids)

    def _call(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            headers = {**self.headers, **(kwargs.pop("headers", None) or {})}
            response = httpx.request(
                method, self.url + path, timeout=timeout or self.timeout, headers=headers, **kwargs
            )
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"The prediction API at {self.url} cannot be reached: {exc}") from exc
        if response.status_code >= 500:
            raise ApiUnavailable(f"The prediction API answered {response.status_code}: {_detail(response)}")
        if response.status_code >= 400:
            reason = _json(response).get("error", f"http_{response.status_code}")
            raise ApiRejected(response.status_code, str(reason), _detail(response))
        return response.json()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _detail(response: httpx.Response) -> str:
    detail = _json(response).get("detail", response.text[:300])
    if isinstance(detail, list):  # validation errors: where and what
        return "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in detail)
    return str(detail)


def _ranked(items: list[dict[str, Any]]) -> tuple[Ranked, ...]:
    return tuple(Ranked(int(r["code"]), str(r["category"]), float(r["probability"])) for r in items)


def _answer(body: dict[str, Any]) -> Answer:
    return Answer(
        code=int(body["code"]),
        category=str(body["category"]),
        probability=float(body["probability"]),
        top_k=_ranked(body["top_k"]),
        modalities=tuple(body["modalities"]),
        views=tuple(
            ViewAnswer(v["view"], _ranked(v["top_k"]), bool(v.get("counted", True)))
            for v in body.get("views", [])
        ),
        photo=_photo(body.get("photo")),
    )


def _photo(body: Any) -> PhotoCheck | None:
    if not isinstance(body, dict):
        return None
    return PhotoCheck(
        familiar=bool(body["familiar"]),
        distance=float(body["distance"]),
        threshold=float(body["threshold"]),
        counted=bool(body["counted"]),
    )
