"""Entry point of the operations console: `streamlit run app/Home.py`."""

from pathlib import Path

import streamlit as st

from core.ui import identity
from core.ui.cached import settings
from core.ui.components import environment_sidebar

PAGES = Path(__file__).resolve().parent.parent / "pages"

st.set_page_config(page_title="Rakuten MLOps console", page_icon=":material/category:", layout="wide")
refusal = identity.refusal()
if refusal:
    st.error(refusal, icon=":material/gpp_bad:")
    st.stop()
who = identity.user()
if who is None:
    identity.sign_in_screen()
    st.stop()
if not who.roles:
    identity.sidebar(who)
    st.warning(
        f"You are signed in as {who.name} but hold no role in this console: ask an admin to add you to "
        "one of its groups at the identity provider.",
        icon=":material/person_off:",
    )
    st.stop()
page = st.navigation(
    {
        "Console": [st.Page(PAGES / "overview.py", title="Overview", icon=":material/home:", default=True)],
        "Data": [
            st.Page(PAGES / "data_explorer.py", title="Data explorer", icon=":material/table_view:"),
            st.Page(PAGES / "review.py", title="Review", icon=":material/rule:"),
        ],
        "Serving": [
            st.Page(PAGES / "predict.py", title="Live prediction", icon=":material/online_prediction:"),
        ],
        "Orchestration": [
            st.Page(PAGES / "pipeline_runs.py", title="Pipeline runs", icon=":material/play_circle:"),
        ],
        "Monitoring": [
            st.Page(PAGES / "drift.py", title="Drift", icon=":material/query_stats:"),
            st.Page(PAGES / "service_health.py", title="Service health", icon=":material/monitor_heart:"),
        ],
        "Tracking": [
            st.Page(PAGES / "experiments.py", title="Experiments", icon=":material/science:"),
            st.Page(PAGES / "models.py", title="Models", icon=":material/model_training:"),
            st.Page(PAGES / "audit.py", title="Audit trail", icon=":material/history:"),
        ],
    }
)
environment_sidebar(settings())
identity.sidebar(who)
page.run()
