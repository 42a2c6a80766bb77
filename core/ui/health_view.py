"""Service health page pieces: the probe table and the service's metrics as charts."""

from __future__ import annotations

from typing import Any, Final, Literal
from urllib.parse import urlsplit

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
# HTTP statuses in the traffic charts by class, whatever order they first appear in (plotly's default
# palette drew the first one blue and the second red, a 200 included)
_HTTP_COLOUR: Final = {"2": _COLOUR["up"], "3": _COLOUR["embedded"], "4": _COLOUR["starting"]}
_LOOPBACK: Final = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def status_colour(status: str) -> str:
    """The colour of an HTTP status: 2xx green, 3xx blue, 4xx orange, 5xx red, anything else grey."""
    if len(status) == 3 and status[0].isdigit():  # "503", or grouped: "5xx"
        return _HTTP_COLOUR.get(status[0], _COLOUR["down"] if status[0] == "5" else _COLOUR["not configured"])
    return _COLOUR["not configured"]


def probes() -> list[Probe]:
    return probe_all(settings())


def probes_frame(found: list[Probe]) -> pd.DataFrame:
    """One row per service; cells with nothing to say are empty, never "None"."""
    return pd.DataFrame(
        {
            "service": [p.service for p in found],
            "status": [f"● {p.state}" for p in found],
            "latency": [f"{p.latency_ms:.0f} ms" if p.latency_ms is not None else "" for p in found],
            "open": [p.link or "" for p in found],
            "detail": [p.detail or "" for p in found],
        }
    )


def probes_styled(found: list[Probe]) -> Any:
    """The probe table with each status in its colour."""
    frame = probes_frame(found)
    colours = {f"● {state}": f"color: {colour}; font-weight: 600" for state, colour in _COLOUR.items()}
    return frame.style.map(lambda cell: colours.get(cell, ""), subset=["status"])


PROBES_CONFIG: Final = {
    "latency": st.column_config.TextColumn("latency"),
    # before the long detail column, wide enough for an address, shown without its scheme
    "open": st.column_config.LinkColumn("UI", display_text=r"https?://(.*?)/?$", width="medium"),
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
    s = settings()
    state = {p.service: p.state for p in found}
    reasons = []
    if state.get("Prometheus") == "up":
        try:
            return "prometheus", prometheus_series(s)
        except MetricsUnavailable as exc:
            reasons.append(str(exc))
    # "starting": it runs and waits for a model, and its /metrics answers already
    if state.get("API") in {"up", "starting"} and s.api_url:
        try:
            return "api", api_snapshot(s.api_url)
        except MetricsUnavailable as exc:
            reasons.append(str(exc))
    api = f"the API at {s.api_url} does not answer" if s.api_url else "the API runs in the console's process"
    prometheus = (
        f"Prometheus at {s.prometheus_url} does not answer"
        if s.prometheus_url
        else "no Prometheus is configured (RAKUTEN_PROMETHEUS_URL)"
    )
    reasons.append(f"No service metrics: {api}, and {prometheus}.")
    return "none", " ".join(reasons)


def metrics_fix(found: list[Probe]) -> str | None:
    """The command that gives the page metrics: an API started where none runs, at the configured
    address — None when the API runs (it only waits for a model) or lives on another machine."""
    s = settings()
    if not s.api_url:
        address = f"http://{s.api_host}:{s.api_port}"
        return f"python -m core serve   # serves {address}; then set RAKUTEN_API_URL={address}"
    api = next((p for p in found if p.service == "API"), None)
    if api is None or api.state != "down" or api.latency_ms is not None:  # it answered: it runs
        return None
    url = urlsplit(s.api_url)
    if url.hostname not in _LOOPBACK:
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"python -m core serve --host {url.hostname} --port {port}   # the API of RAKUTEN_API_URL"


def prometheus_charts(series: dict[str, pd.DataFrame]) -> None:
    columns = st.columns(2)
    for i, (title, frame) in enumerate(series.items()):
        with columns[i % 2]:
            st.markdown(f"**{title}**")
            if frame.empty:
                st.caption("no data in the last hour")
                continue
            colours = {s: status_colour(s) for s in frame["series"].unique()} if "status" in title else None
            fig = px.line(frame, x="time", y="value", color="series", color_discrete_map=colours, height=260)
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
            st.plotly_chart(requests_figure(snapshot.requests), width="stretch", key="requests")
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


def requests_figure(requests: pd.DataFrame) -> Any:
    """Requests by route, stacked by HTTP status, each status in the colour of its class."""
    colours = {str(status): status_colour(str(status)) for status in requests["status"].unique()}
    fig = px.bar(requests, x="handler", y="count", color="status", color_discrete_map=colours, height=280)
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0))
    return fig
