"""Pipeline runs page pieces: the retrain action (one at a time), the live view of a run (steps, the
running one's own progress, streaming logs), the outcome, and the run history — all read from Prefect."""
# Size: the one page's actions, live view and history share its session state (followed run, flash);
# apart they would pass that state around.

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import pandas as pd
import streamlit as st

from core.errors import RakutenError
from core.ui import identity
from core.ui.cached import settings
from core.ui.components import state_inline

if TYPE_CHECKING:
    from core.orchestration.flow_runs import RunInfo

# Lazy imports: Prefect's launcher and runs (~2–4 s) load with the actions and the live view, not for the
# page's first drawing.

_FLASH: Final = "runs_flash"
_FOLLOW: Final = "runs_follow"
_MOVING: Final = "runs_live_active"  # the followed run was still moving at the page's last look
TUNABLE: Final[dict[str, tuple[str, float, float, float]]] = {
    # key: (label, min, max, step) — the rest of params.yaml stays as it is
    "text.C": ("Text SVM C", 0.01, 10.0, 0.05),
    "image.C": ("Image model C", 0.01, 10.0, 0.05),
    "promotion.margin": ("Promotion margin (weighted F1)", 0.0, 0.1, 0.001),
}
# A plain "●" coloured by the table's style, as on Service health: emoji need an emoji font, which many
# machines lack (empty boxes). The live run's state is a badge (`state_inline`, Material icons).
_GREEN, _RED, _BLUE, _GREY = "#1a9850", "#d73027", "#2166ac", "#888888"
STATE_COLOUR: Final = {
    "COMPLETED": _GREEN,
    "FAILED": _RED,
    "CRASHED": _RED,
    "CANCELLED": _GREY,
    "CANCELLING": _GREY,
    "RUNNING": _BLUE,
    "PENDING": _GREY,
    "SCHEDULED": _GREY,
    "PAUSED": _GREY,
}


def mode_caption() -> str:
    s = settings()
    if s.prefect_api_url:
        return f"Server mode: runs execute on a Prefect worker of `{s.prefect_api_url}`."
    return (
        f"Local stack: runs execute on its Prefect worker and are recorded by its Prefect server "
        f"([{s.prefect_url.removesuffix('/api')}]({s.prefect_url.removesuffix('/api')})) — the page "
        "follows them after a reload."
    )


def problem() -> str | None:
    """Why runs cannot be started or read right now (the Prefect server is down…), else None."""
    from core.orchestration.flow_runs import check_prefect

    try:
        check_prefect(settings())
    except RakutenError as exc:
        return str(exc)
    return None


def worker_warning() -> str | None:
    """A started run only moves when a worker polls the pool — say so when none does."""
    from core.orchestration.launcher import WORK_POOL, worker_ready

    ready = worker_ready(settings())
    if settings().local_prefect and not ready:
        return (
            "The local stack's worker is not running: a started run waits until it does. Restart the "
            "stack (`make console`), or see `python -m core status`."
        )
    if ready is None:
        return (
            f"No work pool `{WORK_POOL}` on the Prefect server: create it and deploy the flows "
            f"(`prefect work-pool create {WORK_POOL} --type process`, then `prefect deploy --all` from "
            "the repository root)."
        )
    if not ready:
        return (
            f"No worker is polling `{WORK_POOL}`: a started run waits until one does "
            f"(`prefect worker start --pool {WORK_POOL}`)."
        )
    return None


def current_params() -> dict[str, float | None]:
    """params.yaml's values of the tunable keys; None for a list of candidates (searched by CV)."""
    from core.params import load_params

    flat = load_params(settings().params_file).flat()
    return {key: None if isinstance(flat[key], list) else float(flat[key]) for key in TUNABLE}


def retrain(overrides: dict[str, Any]) -> None:
    """Widget callback: start a training run, or say why not (a run in progress, no worker…)."""
    from core.orchestration.launcher import AlreadyRunning, start_training

    why = f"overrides: {overrides}" if overrides else "params.yaml as it is"
    try:  # a refusal (Forbidden) is a RakutenError: flashed as any other
        with identity.acting(identity.Action.RETRAIN, target="run:training", reason=why) as act:
            launch = start_training(settings(), overrides, actor=identity.actor(), via=identity.via())
            act.target, act.detail = f"run:{launch.run_id}", f"started {launch.name}"
    except AlreadyRunning as exc:
        st.session_state[_FOLLOW] = exc.run_id
        st.session_state[_MOVING] = True
        st.session_state[_FLASH] = (
            "warning",
            f"Training run {_name_of(exc.run_id)} is already in progress: wait for it (Pipeline runs "
            "follows it live), or cancel it first.",
        )
        return
    except RakutenError as exc:
        st.session_state[_FLASH] = ("error", str(exc))
        return
    st.session_state[_FOLLOW] = launch.run_id
    st.session_state[_MOVING] = True  # followed live from the page's next drawing on
    st.session_state[_FLASH] = ("success", f"Started training run {launch.name}.")


def _name_of(run_id: str) -> str:
    """The run's name (what every page and Prefect's UI show), its id when Prefect cannot say."""
    from core.orchestration.flow_runs import read_run

    try:
        return read_run(settings(), run_id).name
    except RakutenError:
        return run_id


def show_flash() -> None:
    flash = st.session_state.pop(_FLASH, None)
    if flash:
        kind, text = flash
        getattr(st, kind)(text)


def following_live() -> bool:
    """Whether the run this session follows was still moving at the page's last look."""
    return bool(st.session_state.get(_MOVING, False))


def seen(*, ended: bool) -> bool:
    """Note how the followed run stands; True when it just ended or just started moving (the page
    is then drawn again whole, at the pace it needs now)."""
    was_moving = following_live()
    st.session_state[_MOVING] = not ended
    return was_moving == ended


def followed_run() -> str | None:
    """The run to show live: the active training run, else the one this session started last, else
    the newest training run (a new browser session shows where things stand)."""
    from core.orchestration.flow_runs import recent_runs
    from core.orchestration.launcher import FLOW, active_training

    active = active_training(settings())
    if active is not None:
        st.session_state[_FOLLOW] = active.id
        return active.id
    followed: str | None = st.session_state.get(_FOLLOW)
    if followed is not None:
        return followed
    # not remembered: a run started elsewhere shows next time; training only (what Retrain starts)
    newest = recent_runs(settings(), limit=1, flows=[FLOW])
    return newest[0].id if newest else None


def cancel(run_id: str, name: str) -> None:
    """Widget callback: cancel a pending or running run."""
    from core.orchestration.launcher import cancel as cancel_run

    try:
        with identity.acting(identity.Action.CANCEL_RUN, target=f"run:{run_id}"):
            cancel_run(settings(), run_id)
    except RakutenError as exc:
        st.session_state[_FLASH] = ("error", str(exc))
        return
    st.session_state[_FLASH] = ("info", f"Cancellation requested for {name}.")


def live(run_id: str, *, key: str = "live") -> bool:
    """Draw the run; whether it is over and drawn whole (a completed run, with its summary)."""
    from core.orchestration.flow_runs import read_run, run_logs, run_summary

    run = read_run(settings(), run_id)
    done, total, current = run.progress
    if run.state == "COMPLETED":  # its last step's own state can reach Prefect a moment after the run's
        done, current = total, None
    took = f" · {run.seconds:.0f} s" if run.seconds is not None else ""
    st.markdown(f"**{run.name}** — {state_inline(run.state, f'{run.state}{took}')} · {run.flow}")
    label = f"step {done} of {total}" + (f": {current}" if current else "")
    if run.state in {"SCHEDULED", "PENDING"}:
        label = "starting… (waiting for the worker)"
    st.progress(done / total if total else 0.0, text=label)
    if not run.final:
        _step_progress(run)
        st.button(
            "Cancel this run",
            key=f"{key}_cancel",
            on_click=cancel,
            args=(run_id, run.name),
            disabled=identity.disabled(identity.Action.CANCEL_RUN),
            help=identity.why(identity.Action.CANCEL_RUN),
        )
    elif run.flow == "training-pipeline":
        overrides = run.parameters.get("overrides") or {}
        st.button(
            "Re-run with its parameters",
            key=f"{key}_rerun",
            on_click=retrain,
            args=(overrides,),
            disabled=identity.disabled(identity.Action.RETRAIN),
            help=identity.why(identity.Action.RETRAIN, f"overrides: {overrides or 'none: params.yaml'}"),
        )
    settled = run.final
    if run.final:
        if run.state != "COMPLETED" and run.message:
            st.error(run.message)
        summary = run_summary(settings(), run_id)
        if summary:  # the artifact's "##" heading, one level down to sit under the page's sections
            with st.container(border=True):
                st.markdown(summary.replace("## ", "#### ", 1))
        elif run.state == "COMPLETED" and _just_ended(run):
            settled = False  # its summary is the run's last write: followed a moment longer
    lines = run_logs(settings(), run_id, last=40)
    with st.expander("Logs", expanded=not run.final):
        st.code("\n".join(f"{ln.at:%H:%M:%S} {ln.level:<7} {ln.message}" for ln in lines) or "no logs yet")
    return settled


def _just_ended(run: RunInfo, within_s: float = 30.0) -> bool:
    """Whether the run ended moments ago (an older one without a summary will never get one)."""
    if run.ended is None:
        return True
    ended = run.ended if run.ended.tzinfo else run.ended.replace(tzinfo=UTC)
    return (datetime.now(UTC) - ended).total_seconds() < within_s


def _step_progress(run: RunInfo) -> None:
    """The running step's own progress (rows, cluster tasks): its newest stage as a bar, others below."""
    from core.orchestration.flow_runs import step_progress

    shown = step_progress(settings(), run.id)
    if shown is None or not shown.lines or shown.task_run_id not in run.running_tasks:
        return  # none yet, or a finished step's
    st.progress(min(max(shown.percent / 100, 0.0), 1.0), text=shown.lines[0])
    if len(shown.lines) > 1:
        st.caption(" · ".join(shown.lines[1:]))


def history_frame() -> pd.DataFrame:
    from core.orchestration.flow_runs import recent_runs

    runs = recent_runs(settings(), limit=25)
    frame = pd.DataFrame(
        {
            "id": [r.id for r in runs],
            "run": [r.name for r in runs],
            "flow": [r.flow for r in runs],
            "state": [f"● {r.state}" for r in runs],
            "started": [r.started for r in runs],
            "seconds": [r.seconds for r in runs],
            "parameters": [str(r.parameters.get("overrides") or "") for r in runs],
        }
    )
    # no run overrode params.yaml: an empty column says nothing
    return frame if frame["parameters"].astype(bool).any() else frame.drop(columns="parameters")


def history_styled(frame: pd.DataFrame) -> Any:
    """The history with each state in its colour."""
    colours = {f"● {state}": f"color: {colour}; font-weight: 600" for state, colour in STATE_COLOUR.items()}
    return frame.style.map(lambda cell: colours.get(cell, ""), subset=["state"])


HISTORY_CONFIG: Final = {
    "id": None,
    "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
    "seconds": st.column_config.NumberColumn("duration", format="%.0f s"),
}


def scheduled() -> pd.DataFrame:
    """The next runs the deployments' schedules created."""
    from core.orchestration.flow_runs import recent_runs

    runs = recent_runs(settings(), limit=5, scheduled=True)
    return pd.DataFrame(
        {"flow": [r.flow for r in runs], "run": [r.name for r in runs], "at": [r.started for r in runs]}
    )
