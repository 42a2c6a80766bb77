"""Home: the state of the whole platform at a glance, and the actions people start here most."""

import streamlit as st

from core.ui import drift as drift_ui
from core.ui import overview as ui
from core.ui import runs as runs_ui

st.title("Rakuten product classification")
st.caption(
    "Operations console for the 27-class Rakuten France product-type task: data, training, tracking, "
    "serving, monitoring and retraining in one place."
)
runs_ui.show_flash()
drift_ui.show_flash()
starting = ui.stack_starting()
pace = 3 if starting else None  # while the local stack starts, the cards and services follow it


@st.fragment(run_every=pace)
def glance() -> bool:
    """The four cards; whether a champion serves. (No action in here that a timer could cut short: the
    quick actions redraw the whole page.)"""
    now_starting = ui.stack_starting()
    data, model, training, drift = st.columns(4)
    with data:
        ui.data_card(starting=bool(now_starting))
    with model:
        champion = ui.champion_card()
    with training:
        ui.training_card(now_starting)
    with drift:
        ui.drift_card()
    if starting and not now_starting:  # everything is up: the whole page once more, without the timer
        ui.forget_services()
        st.rerun()
    return champion is not None


@st.fragment(run_every=pace)
def services() -> None:
    ui.services_row(ui.services(ui.stack_starting()))


has_champion = glance()
st.subheader("Quick actions")
ui.quick_actions(has_champion=bool(has_champion))

st.subheader("Services")
services()
st.page_link(
    ui.PAGES["health"], label="Service health: latency and traffic charts", icon=":material/monitor_heart:"
)
