"""Service health: is each part of the platform there, how fast does it answer, where is its UI — and
the prediction service's key metrics, from Prometheus when it is reachable, else from the API's own
`/metrics`. Probes run in parallel with short timeouts, so a service that is down costs one timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final, Literal

import httpx
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from core.compute.cluster import LOCAL, ClusterUnavailable, probe
from core.config import Settings
from core.errors import RakutenError

State = Literal["up", "down", "starting", "embedded", "not configured"]
TIMEOUT_S: Final = 2.0


class MetricsUnavailable(RakutenError):
    """Neither Prometheus nor the API's /metrics can be read."""


@dataclass(frozen=True)
class Probe:
    service: str
    state: State
    latency_ms: float | None
    detail: str
    link: str | None


def _get(url: str, timeout: float) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = httpx.get(url, timeout=timeout, follow_redirects=True)
    return response, (time.perf_counter() - start) * 1000


def _http(
    service: str,
    url: str,
    path: str,
    link: str | None,
    describe: Callable[[httpx.Response], str],
    timeout: float,
    fix: str = "",
    waiting: Callable[[httpx.Response], str | None] | None = None,
) -> Probe:
    """`up` when `path` answers below 400; `starting` when it answers but `waiting` says why it is not
    ready yet; else `down` (latency None: nothing answered at all)."""
    try:
        response, ms = _get(url.rstrip("/") + path, timeout)
    except httpx.HTTPError as exc:
        return Probe(service, "down", None, f"{url}: {type(exc).__name__} ({exc}){fix}", link)
    if response.status_code >= 400:
        why = waiting(response) if waiting else None
        if why:
            return Probe(service, "starting", ms, why, link)
        return Probe(service, "down", ms, f"{url}{path} answered {response.status_code}", link)
    return Probe(service, "up", ms, describe(response), link)


def _no_model_yet(response: httpx.Response) -> str | None:
    """The API's /ready answering 503 `{"ready": false, …}`: it runs, and waits for a model to serve
    (none trained yet, or its first load) — starting, not down."""
    if response.status_code != 503:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("ready") is not False:
        return None
    why = body.get("detail") or "no model loaded"
    return f"running, waiting for a model to serve ({why})"


def probe_all(settings: Settings, *, timeout: float = TIMEOUT_S) -> list[Probe]:
    """Every service, in a fixed order: API, MLflow, Prefect, Prometheus, Grafana, Dask."""
    links = settings.ui_links
    uri = str(settings.mlflow_tracking_uri)
    checks: list[Callable[[], Probe]] = []
    if settings.api_url:
        api = settings.api_url.rstrip("/")

        def model(response: httpx.Response) -> str:
            info = httpx.get(f"{api}/model", timeout=timeout)
            return f"serving v{info.json().get('version')}" if info.status_code == 200 else "no model loaded"

        link = links.get("api", f"{api}/docs")
        checks.append(partial(_http, "API", api, "/ready", link, model, timeout, waiting=_no_model_yet))
    else:
        checks.append(partial(_fixed, "API", "embedded", "predictions run in the console's process"))
    if uri.startswith(("http://", "https://")):
        mlflow_ui = links.get("mlflow", uri)
        checks.append(partial(_http, "MLflow", uri, "/health", mlflow_ui, _says("tracking server"), timeout))
    else:
        checks.append(partial(_fixed, "MLflow", "embedded", f"local store {uri}"))
    prefect = settings.prefect_url
    ui = links.get("prefect", prefect.removesuffix("/api"))
    what = "API server" if settings.prefect_api_url else "the local stack's server"
    fix = "" if settings.prefect_api_url else " — the local stack's server: start it with `make console`"
    checks.append(partial(_http, "Prefect", prefect, "/health", ui, _says(what), timeout, fix))
    optional = (
        ("Prometheus", settings.prometheus_url, "/-/ready"),
        ("Grafana", settings.grafana_url, "/api/health"),
    )
    for name, url, path in optional:
        if url:
            checks.append(
                partial(_http, name, url, path, links.get(name.lower(), url), _says("ready"), timeout)
            )
        else:
            checks.append(partial(_fixed, name, "not configured", f"set RAKUTEN_{name.upper()}_URL"))
    checks.append(partial(_dask, settings, links.get("dask"), timeout))
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        return list(pool.map(lambda check: check(), checks))


def _dask(settings: Settings, link: str | None, timeout: float) -> Probe:
    """The Dask scheduler of RAKUTEN_DASK_ADDRESS: its workers, threads and memory in use."""
    address = settings.dask_address
    if not address:
        return _fixed("Dask", "not configured", "one machine; set RAKUTEN_DASK_ADDRESS to scale out")
    if address == LOCAL:
        return _fixed("Dask", "embedded", "a temporary cluster of this machine's cores for each run")
    start = time.perf_counter()
    try:
        found = probe(settings.model_copy(update={"dask_connect_timeout_s": timeout}))
    except ClusterUnavailable as exc:
        return Probe("Dask", "down", None, str(exc), link)
    ms = (time.perf_counter() - start) * 1000
    assert found is not None
    if not found.workers:
        return Probe(
            "Dask", "starting", ms, f"scheduler {address} has no worker yet (start `dask worker`)", link
        )
    used = sum(w.memory_used for w in found.workers) / 2**30
    return Probe("Dask", "up", ms, f"{found.summary()}, {used:.1f} GiB in use", link or found.dashboard)


def _fixed(service: str, state: State, detail: str) -> Probe:
    return Probe(service, state, None, detail, None)


def _says(text: str) -> Callable[[httpx.Response], str]:
    return lambda response: text


# --- metrics ------------------------------------------------------------------------------------------
PANELS: Final = {
    "Requests / s by status": 'sum by (status) (rate(http_requests_total{handler=~"/predict.*"}[1m]))',
    "Prediction latency p95 (s)": (
        "histogram_quantile(0.95, sum by (le) "
        '(rate(http_request_duration_seconds_bucket{handler=~"/predict.*"}[1m])))'
    ),
    "Predictions / s by class": "sum by (code) (rate(rakuten_predictions_total[1m]))",
    "Mean confidence": (
        "sum(rate(rakuten_prediction_confidence_sum[1m])) "
        "/ sum(rate(rakuten_prediction_confidence_count[1m]))"
    ),
}


def prometheus_series(
    settings: Settings, *, minutes: int = 60, timeout: float = 5.0
) -> dict[str, pd.DataFrame]:
    """Each panel's series over the last `minutes` (long frames: time, series, value)."""
    if not settings.prometheus_url:
        raise MetricsUnavailable("RAKUTEN_PROMETHEUS_URL is not set.")
    end = datetime.now(UTC)
    start = end - timedelta(minutes=minutes)
    step = max(15, minutes * 60 // 240)
    out: dict[str, pd.DataFrame] = {}
    for title, query in PANELS.items():
        try:
            response = httpx.get(
                f"{settings.prometheus_url.rstrip('/')}/api/v1/query_range",
                timeout=timeout,
                params={"query": query, "start": start.timestamp(), "end": end.timestamp(), "step": step},
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise MetricsUnavailable(
                f"Prometheus at {settings.prometheus_url} does not answer ({exc})."
            ) from exc
        if body.get("status") != "success":
            raise MetricsUnavailable(f"Prometheus refused {query!r}: {body.get('error')}")
        rows = [
            (datetime.fromtimestamp(float(t), UTC), _label(series["metric"]), float(v))
            for series in body["data"]["result"]
            for t, v in series["values"]
        ]
        out[title] = pd.DataFrame(rows, columns=["time", "series", "value"])
    return out


def _label(metric: dict[str, str]) -> str:
    return ", ".join(f"{v}" for k, v in metric.items() if k not in {"__name__", "job", "instance"}) or "all"


@dataclass(frozen=True)
class Snapshot:
    """Totals since the API started, read from its /metrics."""

    requests: pd.DataFrame  # handler, status, count
    predictions: pd.DataFrame  # code, count
    confidence: pd.DataFrame  # upper bound, count in that bucket
    model_version: str | None
    read_at: datetime


def api_snapshot(api_url: str, *, timeout: float = TIMEOUT_S) -> Snapshot:

    try:
        response = httpx.get(f"{api_url.rstrip('/')}/metrics", timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise MetricsUnavailable(f"The API's /metrics at {api_url} cannot be read ({exc}).") from exc
    requests: list[dict[str, Any]] = []
    predictions: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    version = None
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                labels = sample.labels
                requests.append(
                    {"handler": labels.get("handler"), "status": labels.get("status"), "count": sample.value}
                )
            elif sample.name == "rakuten_predictions_total":
                code = sample.labels.get("code", "?")
                predictions[code] = predictions.get(code, 0.0) + sample.value
            elif sample.name == "rakuten_prediction_confidence_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name == "rakuten_model_info" and sample.value:
                version = sample.labels.get("version")
    buckets.sort()
    per_bucket = [(le, count - (buckets[i - 1][1] if i else 0.0)) for i, (le, count) in enumerate(buckets)]
    return Snapshot(
        requests=pd.DataFrame(requests, columns=["handler", "status", "count"]),
        predictions=pd.DataFrame(sorted(predictions.items()), columns=["code", "count"]),
        confidence=pd.DataFrame(per_bucket, columns=["up to", "count"]),
        model_version=version,
        read_at=datetime.now(UTC),
    )
