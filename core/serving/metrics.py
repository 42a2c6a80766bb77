"""What the prediction service exports to Prometheus (`GET /metrics`).

HTTP requests and latency by route and status come from prometheus-fastapi-instrumentator
(`http_requests_total`, `http_request_duration_seconds`); the model-level series below are ours. With
several worker processes, `PROMETHEUS_MULTIPROC_DIR` must be set before the workers start (`python -m
core serve` does it) and `/metrics` aggregates every worker's values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.storage.drift_reports import LATEST

LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONFIDENCE_BUCKETS: Final = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


@dataclass
class ServiceMetrics:
    """The service's own series, registered in `registry` (one per app, so tests can build many)."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))
    drift_reports: Path | None = None  # folder of drift reports: their latest decision is exported too

    def __post_init__(self) -> None:
        self._drift = DriftCollector(self.drift_reports) if self.drift_reports is not None else None
        if self._drift is not None and not multiprocess():
            self.registry.register(self._drift)
        r = self.registry
        self.predictions = Counter(
            "rakuten_predictions_total",
            "Products classified, by route and predicted product type code.",
            ["route", "code"],
            registry=r,
        )
        self.confidence = Histogram(
            "rakuten_prediction_confidence",
            "Probability of the predicted class.",
            ["route"],
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.photos = Counter(
            "rakuten_photos_total",
            "Photos received, by whether they were like the model's training photos (familiar) or not "
            "(unfamiliar: the photo view abstained where there was a title).",
            ["route", "familiar"],
            registry=r,
        )
        self.inference_seconds = Histogram(
            "rakuten_inference_seconds",
            "Model time per request (decoding, features, scoring), without HTTP.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.coalesced = Histogram(
            "rakuten_coalesced_requests",
            "Title requests (/predict) answered by one model call: 1 when alone, more under load.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.model_info = Gauge(
            "rakuten_model_info",
            "1 for the model version this service answers with (labels: version, run id, source).",
            ["version", "run_id", "source"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.model_loaded = Gauge(
            "rakuten_model_loaded",
            "1 when a model is loaded and ready, else 0 (lowest over the workers).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.reloads = Counter(
            "rakuten_model_reloads_total",
            "Model reload attempts by outcome (swapped, unchanged, failed).",
            ["outcome"],
            registry=r,
        )
        self.model_refusals = Counter(
            "rakuten_model_refusals_total",
            "Registered versions refused before loading: files that do not match the digests recorded "
            "at registration (kind mismatch) or no digests at all (kind missing).",
            ["kind"],
            registry=r,
        )
        self.errors = Counter(
            "rakuten_errors_total",
            "Requests refused or failed, by reason.",
            ["reason"],
            registry=r,
        )
        self.auth_refusals = Counter(
            "rakuten_auth_refusals_total",
            "Requests refused for their credential (401: none, or it does not verify) or their role "
            "(403, reason forbidden), by route and reason.",
            ["route", "reason"],
            registry=r,
        )
        self.log_written = Counter(
            "rakuten_inference_log_written_total", "Inference-log records written.", registry=r
        )
        self.log_failures = Counter(
            "rakuten_inference_log_write_failures_total",
            "Inference-log records whose write failed (they are retried).",
            registry=r,
        )
        self.log_dropped = Counter(
            "rakuten_inference_log_dropped_total",
            "Inference-log records dropped because the database stayed unreachable.",
            registry=r,
        )

    def exposition(self) -> bytes:
        """The text Prometheus scrapes: this process's series, or every worker's in multiprocess mode."""
        if multiprocess():
            merged = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(merged)
            if self._drift is not None:
                merged.register(self._drift)
            return generate_latest(merged)
        return generate_latest(self.registry)


class DriftCollector(Collector):
    """The latest drift report's decision (`latest.json`, written by whoever ran the report: CLI,
    console or the monitoring flow), read when Prometheus scrapes — re-read only when it changed."""

    def __init__(self, folder: Path) -> None:
        self.file = folder / LATEST
        self._seen: tuple[float, dict[str, Any] | None] = (-1.0, None)

    def _latest(self) -> dict[str, Any] | None:
        try:
            mtime = self.file.stat().st_mtime
        except OSError:
            return None
        if mtime != self._seen[0]:
            try:
                data = json.loads(self.file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return self._seen[1]  # being replaced: keep what was read last
            self._seen = (mtime, data if isinstance(data, dict) else None)
        return self._seen[1]

    def collect(self) -> Iterator[Metric]:
        latest = self._latest()
        yield GaugeMetricFamily(
            "rakuten_drift_report_available",
            "1 once a drift report exists.",
            value=0 if latest is None else 1,
        )
        if latest is None:
            return
        created = datetime.fromisoformat(str(latest["created_at"])).timestamp()
        yield GaugeMetricFamily(
            "rakuten_drift_detected",
            "1 when the latest drift report found drift.",
            value=1 if latest.get("drift_detected") else 0,
        )
        yield GaugeMetricFamily(
            "rakuten_drift_share",
            "Share of columns drifted in the latest report.",
            value=float(latest.get("drifted_share", 0.0)),
        )
        yield GaugeMetricFamily(
            "rakuten_drift_share_threshold",
            "Share of drifted columns that means drift.",
            value=float(latest.get("drift_share_threshold", 0.0)),
        )
        yield GaugeMetricFamily(
            "rakuten_drift_report_timestamp_seconds", "When the latest report was made.", value=created
        )
        yield GaugeMetricFamily(
            "rakuten_drift_window_rows",
            "Predictions compared in the latest report.",
            value=float(latest.get("current_rows", 0)),
        )
        score = GaugeMetricFamily(
            "rakuten_drift_column_score",
            "Drift score of each column (see method).",
            labels=["column", "method"],
        )
        drifted = GaugeMetricFamily(
            "rakuten_drift_column_drifted", "1 when the column drifted.", labels=["column"]
        )
        for column in latest.get("columns", []):
            score.add_metric([column["column"], column["method"]], float(column["score"]))
            drifted.add_metric([column["column"]], 1 if column["drifted"] else 0)
        yield score
        yield drifted
