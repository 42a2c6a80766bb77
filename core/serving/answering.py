"""Answering prediction requests: the model's answers, then counting (metrics) and logging each one —
what every prediction route does after checking its request. `run_texts` answers the title requests
that the service's `Coalescer` gathered, each as its own request."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

from core.serving.deps import ServiceState
from core.serving.holder import ServedModel
from core.serving.predictor import Answer, Product, predict
from core.serving.records import records


def predict_and_log(
    state: ServiceState,
    model: ServedModel,
    route: str,
    products: Sequence[Product],
    k: int,
    rid: str,
    origin: str = "api",
) -> list[Answer]:
    """Predict, then count and log every answer (the log write is queued, never awaited)."""
    start = time.perf_counter()
    pooled = partial(state.pool.text_proba, model) if route == "batch" else None
    answers = predict(model.classifier, products, state.limits, k=k, text_proba=pooled)
    elapsed = time.perf_counter() - start
    _count(state, route, answers, elapsed)
    if state.writer is not None:
        state.writer.record(
            records(route, model.version, products, answers, elapsed, rid, origin, state.photos)
        )
    return answers


@dataclass(frozen=True, slots=True)
class Asked:
    """One `/predict` request waiting in the service's `Coalescer` to be answered with others."""

    model: ServedModel
    product: Product
    k: int
    rid: str
    origin: str


def run_texts(state: ServiceState, asked: list[Asked]) -> list[Answer]:
    """Answers to `/predict` requests that arrived together: one model call per served model among them
    (a reload may land between two requests), then each request counted and logged as its own."""
    out: dict[int, Answer] = {}
    for model in {id(a.model): a.model for a in asked}.values():
        mine = [i for i, a in enumerate(asked) if a.model is model]
        k = max(asked[i].k for i in mine)
        start = time.perf_counter()
        answers = predict(model.classifier, [asked[i].product for i in mine], state.limits, k=k)
        elapsed = time.perf_counter() - start
        state.metrics.coalesced.observe(len(mine))
        for i, answer in zip(mine, answers, strict=True):
            a = asked[i]
            out[i] = replace(answer, top_k=answer.top_k[: a.k])
            _count(state, "text", [out[i]], elapsed)
            if state.writer is not None:
                logged = records("text", model.version, [a.product], [out[i]], elapsed, a.rid, a.origin)
                state.writer.record(logged)
    return [out[i] for i in range(len(asked))]


def _count(state: ServiceState, route: str, answers: Sequence[Answer], elapsed: float) -> None:
    m = state.metrics
    m.inference_seconds.labels(route).observe(elapsed)
    confidence = m.confidence.labels(route)
    for answer in answers:
        confidence.observe(answer.probability)
    for code, n in Counter(answer.code for answer in answers).items():  # one increment per code, not per row
        m.predictions.labels(route, str(code)).inc(n)
    for familiar, n in Counter(a.photo.familiar for a in answers if a.photo is not None).items():
        m.photos.labels(route, "true" if familiar else "false").inc(n)
