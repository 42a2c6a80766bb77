"""Streamlit pieces shared by every page: status badges, metric cards, empty states that say what to do
next, error display, relative times, charts, and the sidebar's environment box."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal

import pandas as pd
import plotly.express as px
import streamlit as st

from core.config import Settings

_STATUS: Final[dict[str, tuple[str, str]]] = {
    "passed": ("green", "Validation passed"),
    "warnings": ("orange", "Passed with warnings"),
    "quarantined": ("orange", "Rows quarantined"),
    "missing": ("red", "No data"),
}


def status_badge(status: str) -> None:
    colour, text = _STATUS.get(status, ("gray", status))
    st.badge(text, color=colour)  # type: ignore[arg-type]


Colour = Literal["green", "orange", "red", "blue", "gray", "violet"]
# One vocabulary of states across pages: services, runs, drift decisions.
_STATE: Final[dict[str, tuple[Colour, str]]] = {
    "up": ("green", ":material/check_circle:"),
    "embedded": ("blue", ":material/memory:"),
    "down": ("red", ":material/error:"),
    "starting": ("orange", ":material/hourglass_top:"),
    "not configured": ("gray", ":material/radio_button_unchecked:"),
    "COMPLETED": ("green", ":material/check_circle:"),
    "RUNNING": ("blue", ":material/autorenew:"),
    "PENDING": ("gray", ":material/hourglass_empty:"),
    "SCHEDULED": ("gray", ":material/schedule:"),
    "FAILED": ("red", ":material/cancel:"),
    "CRASHED": ("red", ":material/cancel:"),
    "CANCELLED": ("gray", ":material/stop_circle:"),
    "CANCELLING": ("gray", ":material/stop_circle:"),
    "drift": ("red", ":material/trending_up:"),
    "no drift": ("green", ":material/check_circle:"),
}


def state_badge(state: str, text: str | None = None) -> None:
    """A service, run or drift state as a coloured badge (same colours on every page)."""
    colour, icon = _STATE.get(state, ("gray", ":material/help:"))
    label = text or (state.capitalize() if state.isupper() else state)
    st.badge(label, icon=icon, color=colour)


def state_inline(state: str, text: str | None = None) -> str:
    """The same badge as Markdown, to sit inside a line of text (`st.markdown`)."""
    colour, icon = _STATE.get(state, ("gray", ":material/help:"))
    label = text or (state.capitalize() if state.isupper() else state)
    return f":{colour}-badge[{icon} {label}]"


def empty_state(message: str, command: str | None = None) -> None:
    """Say what is missing and the command that fixes it."""
    st.info(message, icon=":material/info:")
    if command:
        st.code(command, language="bash")


def error_state(message: str, command: str | None = None) -> None:
    """Something failed or is unreachable: what happened, and the command that fixes it."""
    st.error(message, icon=":material/error:")
    if command:
        st.code(command, language="bash")


def ago(when: datetime | str | None) -> str:
    """'5 min ago', '3 h ago', '2 days ago' (UTC; naive times are taken as UTC)."""
    if when is None:
        return "—"
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = max((datetime.now(UTC) - when).total_seconds(), 0.0)
    for unit, size in (("day", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return "just now"


def plural(count: int, one: str, many: str | None = None) -> str:
    """`count` and its noun, singular for exactly one: '1 photo', '0 photos', '1,200 rows'
    (`many` for nouns that do not just add an s: plural(n, 'query', 'queries'))."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def environment_sidebar(settings: Settings) -> None:
    with st.sidebar:
        st.caption("Environment")
        st.badge(settings.mode.capitalize(), color="blue" if settings.mode == "embedded" else "green")
        st.caption(f"Data: `{settings.data_dir}`")
        st.caption(f"MLflow: `{settings.mlflow_tracking_uri}`")
        local = "" if settings.prefect_api_url else " (local stack)"
        st.caption(f"Prefect: `{settings.prefect_url}`{local}")
        st.caption(f"API: `{settings.api_url or 'in-process'}`")
        if settings.prometheus_url:
            st.caption(f"Prometheus: `{settings.prometheus_url}`")


def class_distribution_chart(dist: pd.DataFrame) -> None:
    """Horizontal bars of rows per class, named, with the real-data share in the hover."""
    fig = px.bar(
        dist.sort_values("count"),
        x="count",
        y="category",
        orientation="h",
        hover_data={"share": ":.1%", "real_share": ":.1%", "name_fr": True, "category": False},
        labels={"count": "products", "category": "", "real_share": "share in the real data"},
        height=max(360, 22 * len(dist)),
    )
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0))
    st.plotly_chart(fig, width="stretch")
