"""Audit trail: every state-changing action — who, with which role, what, on what, why, how it ended,
from where — filtered, and exported as CSV."""

import streamlit as st

from core.ui import audit_view as ui
from core.ui.components import error_state

st.title("Audit trail")
st.caption(
    "Every action that changes a model, a label, a run or the data, from the console, the API, the CLI "
    "and the flows — refusals included. Append-only: the database refuses to change or delete a row."
)
given = ui.preset()
top = st.columns([2, 2, 2])
who = top[0].multiselect("Who", ui.actors(), default=[given["actor"]] if "actor" in given else [])
actions = top[1].multiselect(
    "What", ui.ACTIONS, default=[given["action"]] if given.get("action") in ui.ACTIONS else []
)
outcomes = top[2].multiselect("Outcome", ui.OUTCOMES)
bottom = st.columns([3, 2])
target = bottom[0].text_input(
    "On what", value=given.get("target", ""), placeholder="model:v7, run:…, product:…"
)
days = bottom[1].date_input("When", value=ui.last_month(), key="audit_days")
try:
    frame = ui.read(who, actions, outcomes, target, days if isinstance(days, tuple) and days else None)
except ui.AuditError as exc:
    error_state(str(exc))
    st.stop()

counts = ui.outcome_counts(frame)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Events", f"{len(frame):,}")
c2.metric("Done", f"{counts['done']:,}")
c3.metric("Refused", f"{counts['refused']:,}")
c4.metric("Failed", f"{counts['failed']:,}")
if frame.empty:
    st.info("No event matches these filters.", icon=":material/filter_alt_off:")
    st.stop()
st.dataframe(frame, hide_index=True, width="stretch", column_config=ui.CONFIG, key="audit_table")
st.download_button(
    "Download as CSV",
    ui.csv(frame),
    "audit.csv",
    "text/csv",
    key="audit_csv",
    icon=":material/download:",
    on_click="ignore",
)
