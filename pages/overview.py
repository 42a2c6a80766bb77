"""Overview: what this console is and the state of the data."""

import streamlit as st

from core.ui.actions import require_data
from core.ui.components import status_badge

st.title("Rakuten product classification")
st.caption(
    "Operations console: data, training, tracking, serving, monitoring and retraining for the "
    "27-class Rakuten France product-type task."
)

st.subheader("Data")
report, _ = require_data()

c1, c2, c3 = st.columns(3)
c1.metric("Train products", f"{report.total('rows_kept', ['train']):,}")
c2.metric("Test products", f"{report.total('rows_kept', ['test']):,}")
c3.metric("Quarantined rows", f"{report.total('rows_quarantined'):,}")
status_badge(report.status)
st.caption(f"Ingested {report.created_at} from `{report.source_dir}`")
st.caption(f"Data version `{report.stats.get('fingerprint')}` · validation report in the data explorer")
st.page_link("../pages/data_explorer.py", label="Open the data explorer", icon=":material/table_view:")
