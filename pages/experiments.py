"""Experiments: every training run tracked in MLflow, and the runs you pick compared side by side."""

import streamlit as st

from core.ui import experiments_view as ui
from core.ui.components import empty_state, error_state
from core.ui.mlflow_access import tracking_problem

st.title("Experiments")
problem = tracking_problem()
if problem:
    error_state(problem)
    st.stop()
# No data guard: runs live in MLflow (possibly a remote server), not in the local data folder.
table = ui.runs()
if table.empty:
    empty_state(
        "No training run recorded yet: train one, then come back to compare runs.",
        "python -m core pipeline",
    )
    st.stop()

labels = ui.run_labels(table)
picked = ui.pick_runs(table, labels)
if len(picked) < 2:
    st.info("Pick two or more runs to compare their metrics, parameters and errors.", icon=":material/info:")
    st.stop()

details = ui.details(picked)
tab_metrics, tab_params, tab_classes, tab_confusion, tab_calibration = st.tabs(
    ["Metrics", "Parameters", "Per-class F1", "Confusion matrices", "Calibration"]
)
with tab_metrics:
    ui.metrics_side_by_side(details)
with tab_params:
    ui.parameter_differences(details)
with tab_classes:
    ui.per_class_f1_chart(details)
with tab_confusion:
    by_id = {d.run_id: d for d in details}
    if len(details) > 2:
        c1, c2 = st.columns(2)
        first = c1.selectbox("First run", picked, format_func=labels.__getitem__, key="confusion_first")
        second = c2.selectbox(
            "Second run", picked, index=1, format_func=labels.__getitem__, key="confusion_second"
        )
        a, b = by_id[first], by_id[second]
    else:
        a, b = details
    ui.confusion_heatmaps(a, b)
    st.subheader("Difference")
    ui.confusion_difference_chart(a, b)
with tab_calibration:
    ui.calibration_chart(details)
