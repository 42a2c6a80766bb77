"""Home: the state of the whole platform at a glance, and the actions people start here most."""

import streamlit as st

from core.ui import drift_view as drift_ui
from core.ui import overview_view as ui
from core.ui import runs_view as runs_ui

st.title("Rakuten product classification")
st.caption(
    "Operations console for the 27-class Rakuten France product-type task: data, training, tracking, "
    "serving, monitoring and retraining in one place."
)
runs_ui.show_flash()
drift_ui.show_flash()
starting = ui.stack_starting()

data, model, training, drift = st.columns(4)
with data:
    ui.data_card(starting=bool(starting))
with model:
    champion = ui.champion_card()
with training:
    ui.training_card(starting)
with drift:
    ui.drift_card()

st.subheader("Quick actions")
ui.quick_actions(has_champion=champion is not None)

st.subheader("Services")
ui.services_row(ui.services(starting))
st.page_link(
    ui.PAGES["health"], label="Service health: latency and traffic charts", icon=":material/monitor_heart:"
)


@st.fragment(run_every=3)
def follow_the_start(drawn: list[bool]) -> None:
    """While the local stack starts: the whole page again as soon as one of its services answers
    (asked on the timer's runs only: the page was just drawn with what the stack said then)."""
    if not drawn:
        drawn.append(True)
        return
    if ui.stack_starting() != starting:
        ui.forget_services()
        st.rerun()


if starting:
    follow_the_start([])
