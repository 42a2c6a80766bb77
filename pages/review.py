"""Review: low-confidence answers and suspicious training labels, one at a time; each decision is a
correction (who, when, why) that the next training applies."""

import streamlit as st

from core.ui import identity
from core.ui import review_view as ui
from core.ui.components import empty_state
from core.ui.identity import Action

st.title("Review")
st.caption(
    "Fix what the model gets wrong: uncertain answers in production and suspicious labels in the training "
    "data. Each decision is recorded with your name; export, then retrain, and the next model learns from it."
)
ui.show_flash()
if not ui.may_review():
    st.info(identity.why(Action.REVIEW) or "", icon=":material/visibility:")

top = st.columns([3, 2], vertical_alignment="bottom")
kind = (
    top[0].segmented_control(
        "Queue", list(ui.KINDS), format_func=ui.KINDS.get, key="review_kind", default="production"
    )
    or "production"
)
top[1].button("Refresh the queue", key="review_refresh", on_click=ui.refresh, icon=":material/refresh:")

items = ui.queue(kind)
done = ui.session_count()
st.progress(
    done / max(done + len(items), 1), text=f"{len(items):,} to review · {done:,} decided in this session"
)
if items.empty:
    if kind == "training" and ui.scan_meta() is None:
        empty_state(
            "No label-issue scan yet: scan the training data with the last trained model's out-of-fold "
            "probabilities (below, or on the command line).",
            "python -m core review scan",
        )
    elif kind == "production":
        empty_state(
            "Nothing to review in production: no recent answer is unsure, split between text and photo, or "
            "served in a drifted window. Live predictions and the traffic simulator fill this queue.",
            "python -m core simulate --n 300",
        )
    else:
        st.success(
            "The training queue is empty: every flagged label was reviewed.", icon=":material/task_alt:"
        )
else:
    item = items.iloc[0].to_dict()
    with st.container(border=True):
        ui.item_card(item, ui.model_view(item))
        ui.decision_bar(item)

st.divider()
left, right = st.columns(2)
with left, st.container(border=True):
    st.markdown("**Training labels scan**")
    meta = ui.scan_meta()
    if meta:
        st.caption(
            f"Last scan {meta.get('scanned_at')}: {ui.scan_summary(meta)} "
            f"(out-of-fold probabilities of the model trained {meta.get('model_trained_at')})."
        )
    if st.button(
        "Scan the training labels",
        key="review_scan",
        icon=":material/search:",
        disabled=identity.disabled(Action.SCAN_LABELS),
        help=identity.why(Action.SCAN_LABELS),
    ):
        ui.scan_now()
        st.rerun()
    ui.show_flash(ui.SCAN_FLASH)  # beside the button that asked for it
with right, st.container(border=True):
    st.markdown("**Export for the next training**")
    st.caption("Writes data/corrections/labels.csv; the next ingest (Retrain) applies it over the download.")
    st.button(
        "Export corrections",
        key="review_export",
        on_click=ui.export_now,
        icon=":material/upload_file:",
        disabled=identity.disabled(Action.EXPORT_CORRECTIONS),
        help=identity.why(Action.EXPORT_CORRECTIONS),
    )
    ui.show_flash(ui.EXPORT_FLASH)  # beside the button, not at the top of the page, out of view
    exported = ui.corrections_file()
    if exported:
        st.download_button("Download labels.csv", exported, "labels.csv", "text/csv", key="review_download")

with st.expander("Corrections history: every correction, undone ones included"):
    st.dataframe(ui.audit_table(), hide_index=True, width="stretch", key="review_audit")
