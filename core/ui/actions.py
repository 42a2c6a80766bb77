"""Console actions that run core steps with visible progress."""

from __future__ import annotations

import streamlit as st

from core.data.prepare import prepare
from core.errors import RakutenError
from core.ui.data import settings


def prepare_data_button(label: str = "Generate demo data and ingest", key: str = "prepare") -> None:
    """A button that runs `python -m core prepare` in-process, with a progress bar per stage."""
    s = settings()
    if not st.button(label, key=key, type="primary", icon=":material/play_arrow:"):
        return
    with st.status("Preparing data…", expanded=True) as box:
        bars: dict[str, object] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = st.progress(0.0, text=stage)
            bars[stage].progress(min(done / max(total, 1), 1.0), text=f"{stage}: {done:,}/{total:,}")  # type: ignore[attr-defined]

        try:
            outcome = prepare(s, workers=s.n_workers, progress=update)
        except RakutenError as exc:
            box.update(label="Preparation failed", state="error")
            st.error(str(exc))
            return
        box.update(label=outcome.summary, state="complete", expanded=False)
    st.rerun()
