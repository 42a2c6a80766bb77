"""Drift: has what the service receives changed since training, and should we retrain?"""

import streamlit as st

from core.ui import drift_view as ui
from core.ui import identity
from core.ui import runs_view as runs_ui
from core.ui.components import ago, plural
from core.ui.identity import Action

st.title("Drift")
st.caption(
    "Evidently reports comparing the inference log's recent window with held-out training products "
    "scored by the champion (title text and descriptors, description, image statistics, predictions)."
)
if st.button(
    "Generate report now",
    key="generate",
    icon=":material/analytics:",
    disabled=identity.disabled(Action.DRIFT_REPORT),
    help=identity.why(Action.DRIFT_REPORT),
):
    ui.generate()
ui.show_flash()
runs_ui.show_flash()
ui.window_panel()

found = ui.reports()
if not found:
    st.info(
        "No drift report yet. Every prediction (API or console) is logged; once the window above holds "
        "enough of them, **Generate report now**. From a terminal: `python -m core simulate --n 1000 "
        "[--drifted]`, then `python -m core drift`."
    )
    st.stop()

latest = found[0]
if latest.drift_detected:
    st.error("**Drift detected** in the latest report — " + "; ".join(latest.reasons[1:] or latest.reasons))
    st.button(
        "Retrain now",
        type="primary",
        key="retrain",
        on_click=runs_ui.retrain,
        args=({},),
        disabled=identity.disabled(Action.RETRAIN),
        help=identity.why(
            Action.RETRAIN, "Starts the training pipeline (follow it on the Pipeline runs page)."
        ),
    )
else:
    st.success("**No drift** in the latest report — " + latest.reasons[0])

c1, c2, c3, c4 = st.columns(4)
c1.metric("Drifted columns", f"{latest.drifted_columns} / {latest.columns_compared}")
c2.metric("Drifted share", f"{latest.drifted_share:.0%}", help=f"drift at {latest.drift_share_threshold:.0%}")
c3.metric("Predictions compared", f"{latest.current_rows:,}", help=f"vs {latest.reference_rows:,} reference")
c4.metric("Report", ago(latest.created_at), help=f"{latest.created_at[:19].replace('T', ' ')} UTC")

st.subheader("Reports")
table = ui.reports_frame(found)
st.dataframe(table, hide_index=True, column_config=ui.REPORTS_CONFIG, key="reports")
when = table["created"].dt.strftime("%Y-%m-%d %H:%M:%S")
labels = dict(zip(table["report"], when + " · " + table["decision"], strict=True))
picked = st.selectbox("Report", table["report"], format_func=labels.get, key="pick")
summary = next(r for r in found if r.html == picked)

if summary.quality and "current" in summary.quality:
    now, before = summary.quality["current"], summary.quality["reference"]
    q1, q2 = st.columns(2)
    q1.metric(
        "Weighted F1, labelled predictions",
        f"{now['weighted_f1']:.3f}",
        delta=f"{now['weighted_f1'] - before['weighted_f1']:+.3f} vs reference",
        help=f"{plural(int(now['rows']), 'prediction')} with their true class (drift --labels)",
    )
    q2.metric("Accuracy", f"{now['accuracy']:.3f}", delta=f"{now['accuracy'] - before['accuracy']:+.3f}")
if summary.quality and "reviewed" in summary.quality:
    checked = summary.quality["reviewed"]
    st.metric(
        "Accuracy of the reviewed predictions",
        f"{checked['accuracy']:.3f}",
        help=f"{plural(int(checked['rows']), 'prediction')} of the window that a reviewer labelled (Review "
        "page): reviewers see the unsure answers first, so this is a floor, not the window's accuracy",
    )

st.subheader("Columns")
st.dataframe(
    ui.columns_frame(summary),
    hide_index=True,
    key="columns",
    column_config={"score": st.column_config.NumberColumn(format="%.4f")},
)
for note in summary.skipped:
    st.caption(f"Not compared — {note}")

st.subheader("Drift over time")
if len(found) < 2:
    st.caption("One report so far: the history appears with the next one.")
else:
    left, right = st.columns(2)
    with left:
        ui.share_chart(found)
    with right:
        ui.column_heatmap(found)
    names = sorted({c.column for r in found for c in r.columns})
    first_drifted = next((c.column for c in latest.columns if c.drifted), names[0])
    column = st.selectbox("Score over time of", names, index=names.index(first_drifted), key="column")
    ui.column_score_chart(found, column)

st.subheader("Evidently report")
ui.embed(summary)
