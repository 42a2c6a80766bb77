"""Models: registered versions with aliases and lineage, the promotion history, promote and roll back."""

import streamlit as st

from core.ui import audit_view, mlflow_access
from core.ui import models_view as ui
from core.ui.components import empty_state, error_state

st.title("Models")
problem = mlflow_access.tracking_problem()
if problem:
    error_state(problem)
    st.stop()
# No data guard: the registry lives in MLflow (possibly a remote server), not in the local data folder.
shown = ui.registered()
if shown is None:
    empty_state(
        "No registered model yet: the training pipeline registers each run's model and promotes it "
        "when the gate agrees.",
        "python -m core pipeline",
    )
    st.stop()

champion, challenger = shown.champion, shown.challenger
ui.show_flash()
c1, c2, c3 = st.columns(3)
with c1:
    st.metric("Champion", f"v{champion.version}" if champion else "—", help="Serves predictions")
    ui.alias_badges(champion, "no champion")
with c2:
    st.metric("Challenger", f"v{challenger.version}" if challenger else "—", help="Waiting for promotion")
    ui.alias_badges(challenger, "no challenger")
c3.metric("Registered versions", len(shown.versions))

st.subheader("Versions")
audit_view.refusals_notice(key="refused_versions")
st.dataframe(shown.table, key="versions", hide_index=True, column_config=ui.VERSIONS_CONFIG)
st.caption(ui.corrections_note(shown.versions))

st.subheader("Promotion history")
ui.history_timeline(shown.history)
st.dataframe(
    shown.history.sort_values("seq", ascending=False),
    key="history",
    hide_index=True,
    column_config=ui.HISTORY_CONFIG,
)
ui.audit_links(shown.versions, champion)

st.subheader("Actions")
left, right = st.columns(2)
with left, st.container(border=True):
    st.markdown("**Promote a version**")
    ui.promote_panel(shown.versions, champion)
with right, st.container(border=True):
    st.markdown("**Roll back the champion**")
    ui.rollback_panel(champion, shown.previous_champion)
with st.container(border=True):
    st.markdown("**Reload the served model**")
    ui.reload_panel()
