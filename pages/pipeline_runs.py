"""Pipeline runs: one-click Retrain (never two at once), the run followed live, its outcome, history."""

import streamlit as st

from core.errors import RakutenError
from core.ui import identity
from core.ui import runs_view as ui
from core.ui.components import error_state
from core.ui.identity import Action

st.title("Pipeline runs")
st.caption(ui.mode_caption())
problem = ui.problem()
if problem:
    error_state(problem)
else:
    warning = ui.worker_warning()
    if warning:
        st.warning(warning)
ui.show_flash()

with st.container(border=True):
    defaults = ui.current_params()
    overrides = {}
    with st.expander("Parameters (params.yaml values; change to override for this run)"):
        st.caption("An empty value is searched by cross-validation over params.yaml's candidates.")
        for key, (label, low, high, step) in ui.TUNABLE.items():
            value = st.number_input(label, low, high, defaults[key], step, key=f"param_{key}", format="%.3f")
            if value is not None and value != defaults[key]:
                overrides[key] = value
    steps = "ingest (validate) → features → train → evaluate → promote if better → predict"
    st.button(
        "Retrain",
        type="primary",
        key="retrain",
        on_click=ui.retrain,
        args=(overrides,),
        disabled=identity.disabled(Action.RETRAIN) or problem is not None,
        help=identity.why(Action.RETRAIN, problem or steps),
    )
if problem:
    st.stop()


# Every second while the followed run moves; else every 5 s, an eye on runs started elsewhere (CLI,
# schedule) — a settled page is not redrawn under a user's click
@st.fragment(run_every="1s" if ui.following_live() else "5s")
def follow() -> None:
    try:
        run_id = ui.followed_run()
        if run_id is None:
            st.info("No run yet: click Retrain, or run `python -m core flow start training`.")
            return
        if ui.seen(ended=ui.live(run_id)):  # it just ended (outcome, history) or just started
            st.rerun(scope="app")
    except RakutenError as exc:  # the Prefect server went away mid-run: say so, keep polling
        st.warning(str(exc))


st.subheader("Current run")
follow()

st.subheader("History")
history = ui.history_frame()
if history.empty:
    st.caption("No runs recorded yet.")
else:
    st.dataframe(ui.history_styled(history), hide_index=True, column_config=ui.HISTORY_CONFIG, key="history")
    names = dict(zip(history["id"], history["run"], strict=True))
    picked = st.selectbox("Show a run", history["id"], format_func=names.get, index=None, key="pick")
    if picked:
        ui.live(picked, key="picked")

st.subheader("Next scheduled runs")
upcoming = ui.scheduled()
if upcoming.empty:
    st.caption("Nothing scheduled on the Prefect server (prefect.yaml: monitor-and-retrain daily at 09:00).")
else:
    st.dataframe(upcoming, hide_index=True)
