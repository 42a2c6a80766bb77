"""Service health page pieces: the probe table and the service's metrics as charts."""

from __future__ import annotations

from typing import Any, Final, Literal

import pandas as pd
import plotly.express as px
import streamlit as st

from core.categories import label
from core.compute.cluster import ClusterUnavailable, probe
from core.monitoring.health import (
    MetricsUnavailable,
    Probe,
    Snapshot,
    api_snapshot,
    probe_all,
    prometheus_series,
)
from core.ui.cached import settings

# A plain "●" coloured by the table's style: emoji need an emoji font, which many machines lack
_COLOUR: Final = {
    "up": "#1a9850",
    "down": "#d73027",
    "starting": "#f46d43",
    "embedded": "#2166ac",
    "not configured": "#888888",
}


def probes() -> list[Probe]:
    return probe_all(settings())


def probes_frame(found: list[Probe]) -> pd.DataFrame:
    """One row per service; cells with nothing to say are empty, never "None"."""
    return pd.DataFrame(
        {
            "service": [p.service for p in found],
            "status": [f"● {p.state}" for p in found],
            "latency": [f"{p.latency_ms:.0f} ms" if p.latency_ms is not None else "" for p in found],
            "detail": [p.detail or "" for p in found],
            "open": [p.link or "" for p in found],
        }
    )


def probes_styled(found: list[Probe]) -> Any:
    """The probe table with each status in its colour."""
    frame = probes_frame(found)
    colours = {f"● {state}": f"color: {colour}; font-weight: 600" for state, colour in _COLOUR.items()}
    return frame.style.map(lambda cell: colours.get(cell, ""), subset=["status"])


PROBES_CONFIG: Final = {
    "latency": st.column_config.TextColumn("latency"),
    "open": st.column_config.LinkColumn("UI"),
}


def dask_workers(found: list[Probe]) -> pd.DataFrame | None:
    """The Dask cluster's workers and their memory, when its scheduler answered the probe."""
    if not any(p.service == "Dask" and p.state == "up" for p in found):
        return None
    try:
        cluster = probe(settings())
    except ClusterUnavailable:  # gone since the probe: the table above says so at the next probe
        return None
    if cluster is None:
        return None
    return pd.DataFrame(
        {
            "worker": [w.name for w in cluster.workers],
            "address": [w.address for w in cluster.workers],
            "threads": [w.threads for w in cluster.workers],
            "memory": [w.memory_used / w.memory_limit if w.memory_limit else 0.0 for w in cluster.workers],
            "in use": [f"{w.memory_used / 2**30:.2f} GiB" for w in cluster.workers],
            "limit": [
                f"{w.memory_limit / 2**30:.1f} GiB" if w.memory_limit else "none" for w in cluster.workers
            ],
        }
    )


WORKERS_CONFIG: Final = {
    "memory": st.column_config.ProgressColumn("memory", format="percent", min_value=0.0, max_value=1.0),
}


def metrics(found: list[Probe]) -> tuple[Literal["prometheus", "api", "none"], Any]:
    """The richest source that answers: Prometheus (history), else the API's /metrics (totals)."""
    state = {p.service: p.state for p in found}
    reasons = []
    if state.get("Prometheus") == "up":
        try:
            return "prometheus", prometheus_series(settings())
        except MetricsUnavailable as exc:
            reasons.append(str(exc))
    if state.get("API") == "up" and settings().api_url:
        try:
            return "api", api_snapshot(settings().api_url or "")
        except MetricsUnavailable as exc:
            reasons.append(str(exc))
    reasons.append("No service metrics: the API is in-process or down, and Prometheus is not reachable.")
    return "none", " ".join(reasons)


def prometheus_charts(series: dict[str, pd.DataFrame]) -> None:
    columns = st.columns(2)
    for i, (title, frame) in enumerate(series.items()):
        with columns[i % 2]:
            st.markdown(f"**{title}**")
            if frame.empty:
                st.caption("no data in the last hour")
                continue
            fig = px.line(frame, x="time", y="value", color="series", height=260)
            fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), legend_title_text="", yaxis_title="")
            st.plotly_chart(fig, width="stretch", key=f"prom_{i}")


def snapshot_charts(snapshot: Snapshot) -> None:

    c1, c2 = st.columns(2)
    c1.metric("Model version", f"v{snapshot.model_version}" if snapshot.model_version else "—")
    c2.metric("Requests answered", f"{int(snapshot.requests['count'].sum()):,}")
    left, right = st.columns(2)
    with left:
        st.markdown("**Requests by route and status**")
        if snapshot.requests.empty:
            st.caption("no requests yet")
        else:
            fig = px.bar(snapshot.requests, x="handler", y="count", color="status", height=280)
            fig.update_layout(margin=dict(l=0, r=0, t=10, b=0))
            st.plotly_chart(fig, width="stretch", key="requests")
    with right:
        st.markdown("**Predictions by class**")
        if snapshot.predictions.empty:
            st.caption("no predictions yet")
        else:
            frame = snapshot.predictions.assign(category=lambda f: [label(int(c)) for c in f["code"]])
            fig = px.bar(
                frame.sort_values("count"),
                x="count",
                y="category",
                orientation="h",
                height=max(280, 20 * len(frame)),
            )
            fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), yaxis_title="")
            st.plotly_chart(fig, width="stretch", key="predictions")
    if not snapshot.confidence.empty:
        st.markdown("**Confidence of the answers**")
        fig = px.bar(snapshot.confidence, x="up to", y="count", height=220)
        fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), xaxis_type="category")
        st.plotly_chart(fig, width="stretch", key="confidence")
