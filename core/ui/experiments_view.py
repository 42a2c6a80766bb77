"""Cached run data and the charts of the Experiments page: runs table, metrics side by side, per-class
F1 per run, confusion matrices and their difference.

The runs table is cached for a few seconds (a run finished from the CLI shows up on the next rerun
after that); a finished run never changes, so run details are cached by run id.
"""
# Size: one page's view-model: the runs table, each comparison chart, and what differs between two runs.

from __future__ import annotations

from typing import Final

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.config import EXPERIMENT_NAME
from core.tracking.training_runs import (
    LOWER_IS_BETTER,
    RUN_COLUMNS,
    RunDetail,
    best_runs,
    calibration_curves,
    confusion_difference,
    data_differences,
    metric_comparison,
    param_differences,
    per_class_f1,
    run_details,
    runs_table,
)
from core.ui.cached import settings
from core.ui.components import plural
from core.ui.mlflow_access import client, registry, store_missing

RUNS_CONFIG: Final = {
    "run_id": None,  # hidden: the run name and the version identify a run
    "run": st.column_config.TextColumn("run", width="medium"),
    "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
    "status": st.column_config.TextColumn("status", width="small"),
    "fit_s": st.column_config.NumberColumn("fit time", format="%.1f s", width="small"),
    "weighted_f1": st.column_config.NumberColumn("weighted F1", format="%.4f", width=100),
    "macro_f1": st.column_config.NumberColumn("macro F1", format="%.4f", width="small"),
    "accuracy": st.column_config.NumberColumn("accuracy", format="%.4f", width="small"),
    "top3_accuracy": st.column_config.NumberColumn("top-3", format="%.4f", width="small"),
    "top5_accuracy": st.column_config.NumberColumn("top-5", format="%.4f", width="small"),
    "commit": st.column_config.TextColumn("git commit", width="small"),
    "data": st.column_config.TextColumn("data version", width=105),
    "rows": st.column_config.NumberColumn("train rows", width=90),
    "version": st.column_config.NumberColumn("version", format="v%d", width="small"),
    "aliases": st.column_config.TextColumn("aliases", width=110),
    "gate": st.column_config.TextColumn("gate", width="small"),
}
_HEAT_HEIGHT: Final = 520


# --- data -----------------------------------------------------------------------------------------
@st.cache_data(ttl=15, show_spinner="Reading runs from MLflow…", max_entries=4)
def _runs(tracking_uri: str, experiment: str) -> pd.DataFrame:
    return runs_table(client(), experiment, registry().versions())


def runs() -> pd.DataFrame:
    """Every run of the experiment, newest first (empty when nothing was ever tracked)."""
    if store_missing():
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    return _runs(str(settings().mlflow_tracking_uri), EXPERIMENT_NAME)


@st.cache_data(show_spinner="Downloading evaluation artifacts…", max_entries=16)
def _details(tracking_uri: str, run_ids: tuple[str, ...]) -> list[RunDetail]:
    return run_details(client(), run_ids)


def details(run_ids: list[str]) -> list[RunDetail]:
    """Params, metrics and evaluation tables of the picked runs (cached by run ids)."""
    return _details(str(settings().mlflow_tracking_uri), tuple(run_ids))


def run_labels(table: pd.DataFrame) -> dict[str, str]:
    """Run id → a short name for pickers: version (if registered), run name, weighted F1."""
    out: dict[str, str] = {}
    for row in table.to_dict("records"):
        version, f1 = row["version"], row["weighted_f1"]
        parts = [f"v{version}" if pd.notna(version) else "unregistered", str(row["run"])]
        if pd.notna(f1):
            parts.append(f"F1 {f1:.4f}")
        out[str(row["run_id"])] = " · ".join(parts)
    return out


# --- rendering ------------------------------------------------------------------------------------
def pick_runs(table: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """The sortable runs table and the picker of runs to compare (selecting rows in the table fills
    the picker; the picker can also be used on its own). Returns the picked run ids."""

    def from_table() -> None:
        rows = st.session_state["runs_table"].selection.rows
        st.session_state["runs"] = table.iloc[rows]["run_id"].tolist()

    st.caption(
        f"{plural(len(table), 'run')}, newest first. Sort by any column; select rows "
        "(or pick below) to compare."
    )
    st.dataframe(
        table,
        key="runs_table",
        hide_index=True,
        on_select=from_table,
        selection_mode="multi-row",
        column_config=RUNS_CONFIG,
    )
    return st.multiselect("Runs to compare", list(labels), format_func=labels.__getitem__, key="runs")


def metrics_side_by_side(details: list[RunDetail]) -> None:
    """Metrics × runs with the best run of each metric highlighted (lowest for losses)."""
    comparison = metric_comparison(details)
    best = best_runs(comparison)

    def highlight(row: pd.Series) -> list[str]:
        return [
            "font-weight: bold; background-color: #d4edda" if c == best.get(row.name) else ""
            for c in row.index
        ]

    st.dataframe(comparison.style.apply(highlight, axis=1).format("{:.4f}", na_rep="—"), key="metrics")
    lower = ", ".join(sorted(LOWER_IS_BETTER & set(comparison.index)))
    st.caption("Best run per metric in bold" + (f" (lowest for {lower})." if lower else "."))


def parameter_differences(details: list[RunDetail]) -> None:
    """Only the parameters that differ between the runs, then what they were trained on where that
    differs (data version, reviewed labels): the same parameters on other data are not the same run."""
    differing = param_differences(details)
    data = data_differences(details)
    if differing.empty and data.empty:
        st.success("These runs used the same parameters on the same data.")
        return
    if differing.empty:
        st.info(
            f"Same parameters, but not the same training data: the {_listed(list(data.index))} "
            f"{'differs' if len(data) == 1 else 'differ'}.",
            icon=":material/dataset:",
        )
    else:
        st.caption(
            f"Only the {plural(len(differing), 'parameter that differs', 'parameters that differ')} between "
            "these runs."
        )
        st.dataframe(differing, key="param_diff")
    if not data.empty:
        st.caption("What they were trained on (the run's `data.*` tags), where it differs:")
        st.dataframe(data, key="data_diff")


def _listed(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def per_class_f1_chart(details: list[RunDetail]) -> None:
    """Grouped bars: F1 of each class, one bar per run; support in the hover."""
    long = per_class_f1(details)
    if long.empty:
        st.info("These runs have no per-class evaluation artifacts.")
        return
    order = long.drop_duplicates("code").sort_values("code")["category"].tolist()
    fig = px.bar(
        long,
        x="category",
        y="f1",
        color="run",
        barmode="group",
        hover_data={"support": True, "code": True},
        category_orders={"category": order},
        labels={"category": "", "f1": "F1", "run": ""},
        height=420,
    )
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h", y=1.1))
    fig.update_xaxes(tickangle=-45)
    fig.update_yaxes(range=[0, 1])
    st.plotly_chart(fig, width="stretch", key="per_class_f1")


def confusion_heatmaps(a: RunDetail, b: RunDetail) -> None:
    """The two confusion matrices side by side, on one colour scale."""
    top = max(float(a.confusion.to_numpy().max(initial=0)), float(b.confusion.to_numpy().max(initial=0)), 1.0)
    for col, run, key in zip(st.columns(2), (a, b), ("confusion_a", "confusion_b"), strict=True):
        with col:
            st.caption(run.label)
            if run.confusion.empty:
                st.info("No confusion matrix recorded for this run.")
                continue
            fig = px.imshow(
                _as_text_axes(run.confusion),
                color_continuous_scale="Blues",
                zmin=0,
                zmax=top,
                labels={"x": "predicted", "y": "true", "color": "rows"},
                height=_HEAT_HEIGHT,
            )
            _categorical(fig)
            st.plotly_chart(fig, width="stretch", key=key)


def confusion_difference_chart(a: RunDetail, b: RunDetail) -> None:
    """`b − a` as shares of each true class, on a diverging scale centred on zero."""
    diff = confusion_difference(a.confusion, b.confusion)
    if diff.empty:
        return
    bound = max(float(diff.abs().to_numpy().max(initial=0)), 0.01)
    fig = px.imshow(
        _as_text_axes(diff),
        color_continuous_scale="RdBu",
        zmin=-bound,
        zmax=bound,
        labels={"x": "predicted", "y": "true", "color": "Δ share"},
        height=_HEAT_HEIGHT,
    )
    _categorical(fig)
    st.plotly_chart(fig, width="stretch", key="confusion_diff")
    st.caption(
        f"{b.label} minus {a.label}, each row as shares of its true class: blue where the second run "
        "puts more of the class, red where it puts less. On the diagonal, blue is better recall."
    )


def _categorical(fig: go.Figure) -> None:
    # Codes look numeric even as strings: without `category`, plotly spaces 10 … 2905 on a number line.
    fig.update_xaxes(type="category", tickangle=-90)
    fig.update_yaxes(type="category")
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0))


def _as_text_axes(matrix: pd.DataFrame) -> pd.DataFrame:
    """Codes as strings, so plotly spaces the classes evenly instead of on a numeric axis."""
    return matrix.set_axis(matrix.index.astype(str), axis=0).set_axis(matrix.columns.astype(str), axis=1)


def calibration_chart(details: list[RunDetail]) -> None:
    """Reliability diagram of the picked runs: accuracy against confidence, one line per run and view;
    the diagonal is perfect calibration."""
    curves = calibration_curves(details)
    if curves.empty:
        st.info("These runs have no calibration curves (runs logged before calibration was reported).")
        return
    view = st.segmented_control(
        "View", sorted(curves["view"].unique()), default="fused", key="calibration_view"
    )
    shown = curves[curves["view"] == (view or "fused")]
    fig = px.line(
        shown,
        x="confidence",
        y="accuracy",
        color="run",
        markers=True,
        hover_data={"rows": True},
        range_x=[0, 1],
        range_y=[0, 1],
        height=460,
        labels={"confidence": "confidence (top class probability)"},
    )
    fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"})
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), legend_title_text="")
    st.caption(
        "Points on the dotted diagonal: a product answered with 80 % confidence is right 80 % of the time."
    )
    st.plotly_chart(fig, width="stretch", key="calibration")
