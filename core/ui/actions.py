"""Console actions that run core steps with visible progress."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.data.prepare import DataState, data_state, prepare
from core.data.validation import ValidationReport
from core.errors import RakutenError
from core.identity.roles import Action, Forbidden
from core.ui import identity
from core.ui.cached import report, settings
from core.ui.components import empty_state

_LABELS = {
    "empty_default": "Generate demo data and ingest",
    "not_ingested": "Ingest the data",
    "stale": "Re-ingest the changed files",
    "ready": "Re-ingest now",
}


def current_state() -> DataState:
    return data_state(settings())


def data_action(state: DataState, key: str = "prepare") -> None:
    """The button that fixes `state` (or an error when only the user can), with progress per stage."""
    if state.name == "missing":
        st.error(state.message, icon=":material/folder_off:")
        return
    primary = state.name != "ready"
    if not st.button(
        _LABELS[state.name],
        key=key,
        type="primary" if primary else "secondary",
        icon=":material/play_arrow:",
        disabled=identity.disabled(Action.REINGEST),
        help=identity.why(Action.REINGEST),
    ):
        return
    s = settings()
    with st.status("Preparing data…", expanded=True) as box:
        bars: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = st.progress(0.0, text=stage)
            bars[stage].progress(min(done / max(total, 1), 1.0), text=f"{stage}: {done:,}/{total:,}")

        try:
            with identity.acting(Action.REINGEST, target=f"data:{s.data_dir.name}", reason=state.name) as act:
                outcome = prepare(s, workers=s.n_workers, force=state.name == "ready", progress=update)
                act.detail = outcome.summary
        except (Forbidden, RakutenError) as exc:
            box.update(label="Preparation failed", state="error")
            st.error(str(exc))
            return
        box.update(label=outcome.summary, state="complete", expanded=False)
    st.rerun()


def require_data() -> tuple[ValidationReport, DataState]:
    """Page guard: the latest ingest report, or an empty state with the fixing button and `st.stop()`.
    When the raw files changed since that ingest, a warning and the re-ingest button come first."""
    state = current_state()
    latest = report()
    if latest is None:
        empty_state(
            f"No ingested data yet. {state.message}",
            "python -m core prepare      # or: python -m core ingest --data-dir PATH",
        )
        data_action(state)
        st.stop()
    if state.needs_action:
        st.warning(state.message, icon=":material/sync_problem:")
        data_action(state)
    return latest, state
