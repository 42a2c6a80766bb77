"""Service health: each part of the platform (up, down, embedded), how fast it answers, its UI; the
prediction service's key metrics from Prometheus, or from the API's own /metrics without it."""

import streamlit as st

from core.ui import audit_view
from core.ui import health_view as ui
from core.ui.components import empty_state

st.title("Service health")
st.caption("Probed now, in parallel, with a 2 s timeout each — press R to probe again.")

probes = ui.probes()
st.dataframe(ui.probes_styled(probes), hide_index=True, column_config=ui.PROBES_CONFIG, key="probes")
down = [p.service for p in probes if p.state == "down"]
if down:
    st.warning(
        f"Not answering: {', '.join(down)} — see the detail column. Local stack: `python -m core status` "
        "(each program's state and log); full stack: `docker compose ps`."
    )

audit_view.refusals_notice(key="refused_versions")

workers = ui.dask_workers(probes)
if workers is not None:
    st.subheader("Dask cluster")
    st.caption("Where image encoding, cross-validation and batch scoring run (RAKUTEN_DASK_ADDRESS).")
    st.dataframe(workers, hide_index=True, column_config=ui.WORKERS_CONFIG, key="dask_workers")

st.subheader("Prediction service")
source, data = ui.metrics(probes)
if source == "prometheus":
    st.caption("Last hour, from Prometheus (1-minute rates).")
    ui.prometheus_charts(data)
elif source == "api":
    st.caption("Totals since the API started, from its /metrics (set RAKUTEN_PROMETHEUS_URL for history).")
    ui.snapshot_charts(data)
else:
    empty_state(str(data), ui.metrics_fix(probes))
