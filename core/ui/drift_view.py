"""Drift page pieces: the reports (from `reports/evidently`), a report generated now with progress,
drift over time as charts, the Evidently report itself, and Retrain when drift is found."""
# Size: the Drift page's view-model: report list, generation with progress, charts over time, retrain.

from __future__ import annotations

import html
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.errors import RakutenError
from core.identity.roles import Action, Forbidden
from core.storage.drift_reports import DriftSummary, list_reports, report_html, script_safe_html
from core.ui import identity
from core.ui.cached import settings
from core.ui.components import plural

if TYPE_CHECKING:
    from core.serving.client import Backend

# Lazy imports: the drift report's and the simulator's modules (~2 s) load when a report is made or traffic
# sent, not to draw the page.

_FLASH: Final = "drift_flash"


def reports() -> list[DriftSummary]:
    """Every report's summary, newest first (a small JSON index: read on each rerun)."""
    return list_reports(settings())


def generate() -> None:
    """Make a report now, showing its progress; the outcome (or why not) is flashed after the rerun."""
    from core.monitoring.drift import report_now

    with st.status("Generating a drift report…", expanded=True) as status:
        bar = st.progress(0.0, text="starting")

        def progress(stage: str, done: int, total: int) -> None:
            # a one-step stage (Evidently's comparison) has no count worth showing: say what runs
            text = (
                f"{stage}: {done:,} / {total:,}"
                if total > 1
                else f"{stage}: {'done' if done else 'running…'}"
            )
            bar.progress(done / total if total else 1.0, text=text)

        try:
            with identity.acting(Action.DRIFT_REPORT, target="drift:window") as act:
                summary = report_now(settings(), progress=progress)
                act.target = f"drift:{summary.created_at}"
                act.detail = "; ".join(summary.reasons)
        except Forbidden as exc:
            status.update(label="Not allowed", state="error")
            st.session_state[_FLASH] = ("error", str(exc))
            return
        except RakutenError as exc:
            status.update(label="No report", state="error")
            st.session_state[_FLASH] = ("warning", str(exc))
            return
        status.update(label=f"Report ready in {summary.seconds:.1f} s", state="complete")
    kind = "error" if summary.drift_detected else "success"
    st.session_state[_FLASH] = (kind, "New report: " + "; ".join(summary.reasons))


@dataclass(frozen=True)
class Window:
    rows: int
    needed: int
    hours: int
    by_origin: dict[str, int]

    @property
    def enough(self) -> bool:
        return self.rows >= self.needed


def window() -> Window:
    """The inference log's current window: how many predictions, from where, and how many a report needs."""
    from core.monitoring.drift import current_window

    s = settings()
    frame, _ = current_window(s)
    counts = frame["origin"].value_counts().to_dict() if len(frame) else {}
    return Window(
        len(frame), s.monitor_min_rows, s.monitor_window_hours, {str(k): int(v) for k, v in counts.items()}
    )


def _traffic_backend() -> tuple[Backend | None, str]:
    """Where held-back products go: the API when one is configured (it must answer), else the
    console's own model. The second value says where — or exactly what is missing."""
    from core.serving.client import ApiBackend, ApiRejected, ApiUnavailable
    from core.ui.prediction_view import in_process

    s = settings()
    if s.api_url:
        api = ApiBackend(s.api_url, origin="simulator", timeout=30.0, token=identity.api_credential())
        try:
            info = api.model_info(timeout=3.0)
        except (ApiUnavailable, ApiRejected) as exc:
            return None, (
                f"The prediction API at `{s.api_url}` cannot answer ({exc}). The local stack runs it: "
                "`python -m core status` shows each service, `make console` starts them."
            )
        return api, f"the prediction API at `{s.api_url}` (model v{info['version']})"
    local = in_process(origin="simulator")
    if local is None:
        return None, "No champion model yet: train one first (Pipeline runs → Retrain)."
    return local, f"the console's own copy of champion v{local.model.version} (no API configured)"


def send_traffic(n: int, shifted: bool) -> None:
    """Replay `n` held-back products (the test set, never trained on) as the simulator does, with
    progress; what happened is flashed after the rerun."""
    from core.monitoring.simulate import Shift, describe_shift, send_held_back

    backend, where = _traffic_backend()
    if backend is None:
        st.session_state[_FLASH] = ("error", where)
        return
    shift = (
        Shift(class_mix=0.5, new_vocabulary=0.5, darker=0.8, empty_description=0.7) if shifted else Shift()
    )
    with st.status(f"Sending {plural(n, 'held-back product')} to {where}…", expanded=True) as status:
        bar = st.progress(0.0, text=f"0 / {n:,}")
        from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

        context = get_script_run_ctx()

        def progress(stage: str, done: int, total: int) -> None:
            # called from the replay's client threads: they draw into this page's session
            add_script_run_ctx(threading.current_thread(), context)
            bar.progress(done / total if total else 1.0, text=f"{done:,} / {plural(total, 'product')}")

        try:
            _, result = send_held_back(settings(), backend, n, shift, progress=progress)
        except RakutenError as exc:
            status.update(label="Nothing sent", state="error")
            st.session_state[_FLASH] = ("error", str(exc))
            return
        writer = getattr(backend, "writer", None)  # in-process: its records are in the log before the rerun
        if writer is not None:
            writer.flush(timeout=30.0)
        status.update(label=f"{result.answered:,} answered in {result.seconds:.1f} s", state="complete")
    failed = f", {result.failed:,} failed ({dict(result.errors)})" if result.failed else ""
    st.session_state[_FLASH] = (
        "warning" if result.failed else "success",
        f"Sent {plural(result.sent, 'held-back product')} ({describe_shift(shift)}) to {where}: "
        f"{result.answered:,} answered{failed}.",
    )


def window_panel(key: str = "traffic") -> None:
    """The window a report would compare, and the products to send: up front while the window is too
    small for a report, folded away once it is big enough — still there, to make a drifted case."""
    try:
        found = window()
    except RakutenError as exc:
        st.warning(str(exc))
        return
    origins = ", ".join(f"{n:,} {origin}" for origin, n in sorted(found.by_origin.items())) or "none"
    with st.container(border=True):
        left, right = st.columns([1, 2])
        left.metric(
            f"Predictions, last {found.hours} h",
            f"{found.rows:,}",
            help=f"A report needs at least {found.needed:,} (RAKUTEN_MONITOR_MIN_ROWS).",
        )
        right.caption(f"Logged by origin: {origins}")
        if found.enough:
            right.caption(f"Enough for a report (at least {found.needed:,}).")
            with right.expander("Send more held-back products (shift them to make a drifted case)"):
                _send_form(key, found.needed)
            return
        missing = found.needed - found.rows
        right.warning(
            f"{plural(missing, 'more prediction is', 'more predictions are')} needed for a report. Send "
            "held-back products (the test set, never trained on) through the prediction service — or wait "
            "for real traffic."
        )
        with right:
            _send_form(key, max(missing, 50))


def _send_form(key: str, default: int) -> None:
    n = st.number_input("Products to send", 1, 20_000, min(default, 20_000), 50, key=f"{key}_n")
    shifted = st.checkbox(
        "Shift them (a class mix, unseen product types, darker photos, empty descriptions)",
        key=f"{key}_shifted",
    )
    if st.button(f"Send {plural(int(n), 'held-back product')}", key=f"{key}_send", icon=":material/send:"):
        send_traffic(int(n), shifted)
        st.rerun()


def show_flash() -> None:
    flash = st.session_state.pop(_FLASH, None)
    if flash:
        kind, text = flash
        getattr(st, kind)(text)


def reports_frame(found: list[DriftSummary]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "created": [pd.Timestamp(r.created_at) for r in found],
            "decision": ["🔴 drift" if r.drift_detected else "🟢 no drift" for r in found],
            "drifted share": [r.drifted_share for r in found],
            "columns drifted": [f"{r.drifted_columns} / {r.columns_compared}" for r in found],
            "predictions": [r.current_rows for r in found],
            "model": [f"v{r.model_version}" if r.model_version is not None else "—" for r in found],
            "window": [f"{_minute(r.window_start)} → {_minute(r.window_end)}" for r in found],
            "report": [r.html for r in found],
        }
    )


def _minute(stamp: str | None) -> str:
    """An ISO time stamp to the minute, in UTC (no seconds, no microseconds)."""
    if not stamp:
        return "?"
    at = pd.Timestamp(stamp)
    return (at.tz_convert("UTC") if at.tzinfo else at).strftime("%Y-%m-%d %H:%M")


REPORTS_CONFIG: Final = {
    "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    "drifted share": st.column_config.ProgressColumn(
        "drifted share", min_value=0.0, max_value=1.0, format="percent"
    ),
    "report": None,
}


def columns_frame(summary: DriftSummary) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "column": [c.column for c in summary.columns],
            "kind": [c.kind for c in summary.columns],
            "drifted": ["yes" if c.drifted else "" for c in summary.columns],
            "method": [c.method for c in summary.columns],
            "score": [c.score for c in summary.columns],
            "threshold": [c.threshold for c in summary.columns],
        }
    ).sort_values(["drifted", "column"], ascending=[False, True])


def share_chart(found: list[DriftSummary]) -> None:
    """Drifted share per report, with the threshold that means drift."""
    ordered = sorted(found, key=lambda r: r.created_at)
    frame = pd.DataFrame(
        {
            "created": [pd.Timestamp(r.created_at) for r in ordered],
            "drifted share": [r.drifted_share for r in ordered],
        }
    )
    fig = px.line(frame, x="created", y="drifted share", markers=True, height=280)
    fig.add_hline(y=ordered[-1].drift_share_threshold, line_dash="dash", annotation_text="drift threshold")
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), yaxis_tickformat=".0%", yaxis_range=[0, 1])
    st.plotly_chart(fig, width="stretch")


def column_heatmap(found: list[DriftSummary]) -> None:
    """Which column drifted in which report (columns × reports)."""
    ordered = sorted(found, key=lambda r: r.created_at)[-30:]
    columns = sorted({c.column for r in ordered for c in r.columns})
    times = [pd.Timestamp(r.created_at).strftime("%m-%d %H:%M") for r in ordered]
    z = [
        [next((1 if c.drifted else 0 for c in r.columns if c.column == col), None) for r in ordered]
        for col in columns
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=times,
            y=columns,
            colorscale=[[0, "#d9f0d3"], [1, "#d73027"]],
            zmin=0,
            zmax=1,
            showscale=False,
            xgap=2,
            ygap=2,
            hovertemplate="%{y} at %{x}: %{z}<extra>1 = drifted</extra>",
        )
    )
    fig.update_layout(
        margin=dict(l=0, r=0, t=10, b=0), height=max(260, 22 * len(columns)), xaxis_type="category"
    )
    st.plotly_chart(fig, width="stretch")


def column_score_chart(found: list[DriftSummary], column: str) -> None:
    """One column's drift score across reports, with its threshold (p-values: below is drift;
    distances and AUC: above is drift)."""
    rows = [
        (
            pd.Timestamp(r.created_at),
            c.score,
            c.threshold,
            "drifted" if c.drifted else "not drifted",
            c.method,
        )
        for r in sorted(found, key=lambda r: r.created_at)
        for c in r.columns
        if c.column == column
    ]
    frame = pd.DataFrame(rows, columns=["created", "score", "threshold", "drifted", "method"])
    if frame.empty:
        st.caption(f"{column} was not compared in these reports.")
        return
    fig = px.line(frame, x="created", y="score", markers=True, height=260, hover_data=["method"])
    colours = ["#d73027" if drifted else "#1a9850" for drifted in frame["drifted"]]
    fig.add_scatter(
        x=frame["created"],
        y=frame["score"],
        mode="markers",
        showlegend=False,
        marker=dict(size=11, color=colours),
    )
    fig.add_hline(y=float(frame["threshold"].iloc[-1]), line_dash="dash", annotation_text="threshold")
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0))
    st.plotly_chart(fig, width="stretch", key="column_score")
    st.caption(f"Method: {frame['method'].iloc[-1]} — red: drifted.")


@st.cache_data(max_entries=4, show_spinner=False)
def _html(path: str, mtime: float) -> str:
    return script_safe_html(Path(path).read_text(encoding="utf-8"))  # a report from before the escaping


def embed(summary: DriftSummary) -> None:
    """The self-contained Evidently report, scrollable, in a sandboxed frame, and its download."""
    try:
        path = report_html(settings(), summary)
        text = _html(str(path), path.stat().st_mtime)
    except RakutenError as exc:
        st.warning(str(exc))
        return
    st.download_button(
        "Download the HTML report", text, file_name=path.name, mime="text/html", key="download"
    )
    st.iframe(sandboxed(text), height=900, alt="Evidently drift report")  # scrolls when taller


# Streamlit (1.67) draws `st.iframe(html)` as `<iframe srcdoc=… sandbox="… allow-scripts allow-same-origin
# allow-popups-to-escape-sandbox …">`: the document runs as the console's own origin (its cookies, storage
# and `window.parent`). The report is built partly from traffic (product titles), so it gets a frame of its
# own inside that one: scripts run (Evidently draws with them) in an opaque origin, with no popups, no
# navigation of the page, no forms and no dialogs.
REPORT_SANDBOX: Final = "allow-scripts"
# Evidently lays its widgets out on a grid wider than the console's column and clips what does not fit
# (its cards hide their overflow): the report is drawn at `REPORT_WIDTH` and scaled down to the room.
REPORT_WIDTH: Final = 1100
_FIT: Final = (
    "(function(){var f=document.querySelector('iframe'),w=WIDTH;"
    "function fit(){var s=Math.min(1,document.documentElement.clientWidth/w);"
    "if(s>=1){f.style.width='100%';f.style.height='100%';f.style.transform='';return;}"
    "f.style.width=w+'px';f.style.height=(innerHeight/s)+'px';f.style.transform='scale('+s+')';}"
    "addEventListener('resize',fit);fit();})();"
).replace("WIDTH", str(REPORT_WIDTH))


def sandboxed(report: str) -> str:
    """A page that shows `report` (a whole HTML document) in a frame sandboxed to `REPORT_SANDBOX`,
    filling the page, scaled to fit (`REPORT_WIDTH`): the report is an attribute value here, escaped,
    never markup of this page."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><style>html,body{margin:0;height:100%;'
        "overflow-y:hidden}iframe{display:block;border:0;width:100%;height:100%;transform-origin:0 0}"
        "</style></head><body>"
        f'<iframe sandbox="{REPORT_SANDBOX}" title="Evidently drift report" '
        f'srcdoc="{html.escape(report, quote=True)}"></iframe><script>{_FIT}</script></body></html>'
    )
