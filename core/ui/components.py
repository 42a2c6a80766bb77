"""Streamlit pieces shared by every page: badges, empty states, charts, the sidebar environment box."""

from __future__ import annotations

from typing import Final

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


def empty_state(message: str, command: str | None = None) -> None:
    """Say what is missing and the command that fixes it."""
    st.info(message, icon=":material/info:")
    if command:
        st.code(command, language="bash")


def environment_sidebar(settings: Settings) -> None:
    with st.sidebar:
        st.caption("Environment")
        st.badge(settings.mode.capitalize(), color="blue" if settings.mode == "embedded" else "green")
        st.caption(f"Data: `{settings.raw_dir}`")
        st.caption(f"MLflow: `{settings.mlflow_tracking_uri}`")
        st.caption(f"Prefect: `{settings.prefect_api_url or 'local (ephemeral)'}`")
        st.caption(f"API: `{settings.api_url or 'in-process'}`")


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
