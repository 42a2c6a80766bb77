"""Home page pieces: the platform at a glance — data, champion, last training run, last drift decision,
the services — and the quick actions. Each card reads its own source and says what is missing (and
what fixes it) on its own, so one service down never hides the others."""
# Size: one card per source, each with its own missing/unreachable/starting states, plus the quick
# actions that depend on them (a first training in progress); splitting by card would scatter one page.

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Final

import streamlit as st

from core.errors import RakutenError
from core.identity.roles import Action
from core.monitoring.health import Probe, probe_all
from core.ui import drift_view as drift_ui
from core.ui import identity, mlflow_access
from core.ui import runs_view as runs_ui
from core.ui.actions import current_state, data_action
from core.ui.cached import report, settings
from core.ui.components import ago, state_badge

if TYPE_CHECKING:
    from core.orchestration.flow_runs import RunInfo

# Lazy imports: each card loads what it reads (MLflow's runs, Prefect's client, the stack's state): the
# first page draws before the slow ones.

PAGES: Final = {
    "data": "../pages/data_explorer.py",
    "predict": "../pages/predict.py",
    "runs": "../pages/pipeline_runs.py",
    "drift": "../pages/drift.py",
    "health": "../pages/service_health.py",
    "models": "../pages/models.py",
}


@dataclass(frozen=True)
class ChampionCard:
    version: int
    weighted_f1: float | None
    since: datetime
    versions: int


@dataclass(frozen=True)
class LastRun:
    name: str
    state: str
    started: datetime | None
    seconds: float | None
    active: bool
    step: str | None = None  # where an active run is: "train (step 3 of 6)", "waiting for the worker"


# --- reading ----------------------------------------------------------------------------------------
def champion() -> ChampionCard | None:
    """The serving model as the registry says (None: nothing trained or no champion yet)."""
    from core.tracking.training_runs import champion_of, champion_since, weighted_f1

    problem = mlflow_access.tracking_problem()
    if problem:
        raise RakutenError(problem)
    if mlflow_access.store_missing():
        return None
    registry = mlflow_access.registry()
    versions = registry.versions()
    best = champion_of(versions)
    if best is None:
        return None
    since = champion_since(registry.history(), best)
    return ChampionCard(best.version, weighted_f1(best), since, len(versions))


def last_training() -> LastRun | None:
    """The newest training run Prefect knows, with its step while it runs (raises RakutenError when
    its API cannot be reached). Read at most every 2 s: the training card, the quick actions and the
    API's card all ask."""
    found, problem = _last_training(settings().model_dump_json())
    if problem:
        raise RakutenError(problem)
    return found


@st.cache_data(ttl=2, show_spinner=False)
def _last_training(settings_key: str) -> tuple[LastRun | None, str | None]:
    """(the run, None), or (None, why Prefect cannot say): an unreachable server is asked once too."""
    from core.orchestration.flow_runs import read_run, recent_runs
    from core.orchestration.launcher import FLOW

    try:
        found = recent_runs(settings(), limit=1, flows=[FLOW])
        if not found:
            return None, None
        run = found[0]
        step = None if run.final else where(read_run(settings(), run.id))
    except RakutenError as exc:
        return None, str(exc)
    return LastRun(run.name, run.state, run.started, run.seconds, not run.final, step), None


def where(run: RunInfo) -> str:
    """Where a run that has not ended stands: its running step, or waiting for the worker."""
    if run.state in {"SCHEDULED", "PENDING"}:
        return "waiting for the worker"
    done, total, current = run.progress
    if current:
        return f"{current} (step {min(done + 1, total)} of {total})"
    return f"step {done} of {total} done"


def _active_training() -> LastRun | None:
    """The training run in progress, if any (None too when Prefect cannot say: the card says why)."""
    try:
        run = last_training()
    except RakutenError:
        return None
    return run if run is not None and run.active else None


@st.cache_data(ttl=10, show_spinner=False)
def _probes(settings_key: str) -> list[Probe]:
    return probe_all(settings())


# The services the local stack runs, by the name its supervisor knows them
_PROGRAMS: Final = {"API": "api", "Prefect": "prefect"}


def services(starting: frozenset[str] = frozenset()) -> list[Probe]:
    """Every service's state, probed at most every 10 s (a service down costs a 2 s timeout) — at
    every call while the local stack is `starting` some: one it is bringing up is "starting"."""
    if starting:
        _probes.clear()
    return [_as_seen(probe, starting) for probe in _probes(settings().model_dump_json())]


def _as_seen(probe: Probe, starting: frozenset[str]) -> Probe:
    if probe.state == "down" and _PROGRAMS.get(probe.service) in starting:
        return replace(probe, state="starting", detail="the local stack is starting it")
    if probe.service == "API" and probe.state == "starting":  # it runs, its /ready waits for a model
        return _waiting_for(probe)
    return probe


def _waiting_for(api: Probe) -> Probe:
    """The API runs and waits for a model (its /ready said so): name the training run that will give
    it one, and where that run stands."""
    run = _active_training()
    if run is None:
        return api
    return replace(api, detail=f"waiting for a model: training run `{run.name}` is at {run.step}")


def forget_services() -> None:
    """The next `services()` probes again (the stack just came up: what was probed while it started
    is stale)."""
    _probes.clear()


@st.cache_data(ttl=2, show_spinner=False)
def _starting(settings_key: str) -> frozenset[str]:
    from core.stack.supervisor import starting

    return frozenset(starting(settings(), _PROGRAMS.values()))


def stack_starting() -> frozenset[str]:
    """The local stack's services (`api`, `prefect`) it is still bringing up: started, not answering
    yet. Empty when no stack runs here, or when they all answer."""
    return _starting(settings().model_dump_json())


# --- cards --------------------------------------------------------------------------------------------
def data_card(*, starting: bool = False) -> None:
    with st.container(border=True):
        found = report()
        if found is None:
            st.metric("Products", "—")
            state_badge("down", "No data yet")
            if starting:  # `up` prepares it (unless --no-prepare): no second preparation beside it
                st.caption("The local stack is starting: the data it prepares shows here.")
                return
            data_action(current_state(), key="home_prepare")
            return
        products = found.total("rows_kept")
        st.metric("Products", f"{products:,}", help="Train + test rows kept by the last ingest")
        st.caption(
            f"{found.total('rows_kept', ['train']):,} train · {found.total('rows_kept', ['test']):,} test · "
            f"{found.total('rows_quarantined'):,} quarantined"
        )
        st.caption(
            f"Version `{str(found.stats.get('data_version', found.stats.get('fingerprint', '—')))[:12]}` "
            f"· ingested {ago(found.created_at)}"
        )
        st.page_link(PAGES["data"], label="Data explorer", icon=":material/table_view:")


def champion_card() -> ChampionCard | None:
    """The champion's card; returns it (None when there is none or the registry is unreachable)."""
    with st.container(border=True):
        try:
            found = champion()
        except RakutenError as exc:
            st.metric("Champion model", "unreachable")
            state_badge("down", "Registry down")
            st.caption(str(exc))
            return None
        if found is None:
            st.metric("Champion model", "—")
            state_badge("not configured", "No model yet")
            st.caption("Train the first model: **Retrain** below (or `python -m core pipeline`).")
            return None
        f1 = f"{found.weighted_f1:.4f}" if found.weighted_f1 is not None else "—"
        st.metric("Champion model", f"v{found.version}", help="The version that serves predictions")
        st.caption(
            f"Weighted F1 **{f1}** · champion since {found.since:%Y-%m-%d %H:%M} UTC ({ago(found.since)})"
        )
        st.caption(f"{found.versions} registered version{'s' if found.versions > 1 else ''}")
        st.page_link(PAGES["models"], label="Models", icon=":material/model_training:")
    return found


def training_card(starting: frozenset[str] = frozenset()) -> None:
    with st.container(border=True):
        try:
            run = last_training()
        except RakutenError as exc:
            st.metric("Last training run", "—")
            if "prefect" in starting:
                state_badge("starting", "Prefect starting")
                st.caption("The local stack is starting its Prefect server: this page follows it.")
                return
            state_badge("down", "Prefect unreachable")
            st.caption(str(exc))
            return
        if run is None:
            st.metric("Last training run", "—")
            state_badge("not configured", "No run yet")
            st.caption("Runs started here, from the CLI or on a schedule appear here.")
        else:
            st.metric("Last training run", run.state.capitalize())
            took = f"took {run.seconds:.0f} s" if run.seconds is not None else run.state.lower()
            state_badge(run.state, "in progress" if run.active else took)
            at = f" · {run.step}" if run.active and run.step else ""
            st.caption(f"`{run.name}` · started {ago(run.started)}{at}")
        live = run is not None and run.active
        st.page_link(
            PAGES["runs"], label="Follow it live" if live else "Pipeline runs", icon=":material/play_circle:"
        )


def drift_card() -> None:
    from core.storage.drift_reports import latest_report

    with st.container(border=True):
        latest = latest_report(settings())
        if latest is None:
            st.metric("Last drift decision", "—")
            state_badge("not configured", "No report yet")
            st.caption("Send traffic to the API, then generate a report (quick actions below).")
        else:
            decision = "drift" if latest.drift_detected else "no drift"
            st.metric("Last drift decision", decision.capitalize())
            state_badge(decision, f"{latest.drifted_columns}/{latest.columns_compared} columns drifted")
            st.caption(f"{latest.current_rows:,} predictions · report {ago(latest.created_at)}")
        st.page_link(PAGES["drift"], label="Drift", icon=":material/query_stats:")


def services_row(found: list[Probe]) -> None:
    for column, probe in zip(st.columns(len(found)), found, strict=True):
        with column, st.container(border=True):
            st.markdown(f"**{probe.service}**")
            state_badge(probe.state)
            latency = f"{probe.latency_ms:.0f} ms · " if probe.latency_ms is not None else ""
            st.caption(f"{latency}{probe.detail}")


def quick_actions(has_champion: bool) -> None:
    retrain, report_now, predict = st.columns(3)
    running = _active_training()
    with retrain:
        if running is not None:  # one run at a time: no second start offered beside it
            st.button(
                f"Training: {running.name}",
                key="home_retrain",
                icon=":material/autorenew:",
                disabled=True,
                width="stretch",
                help=f"Training run {running.name} is at {running.step}: follow it on Pipeline runs.",
            )
        else:
            st.button(
                "Retrain" if has_champion else "Train the first model",
                type="primary",
                key="home_retrain",
                icon=":material/model_training:",
                on_click=_retrain,
                disabled=identity.disabled(Action.RETRAIN),
                width="stretch",
                help=identity.why(
                    Action.RETRAIN, "Starts the training pipeline; follow it on Pipeline runs."
                ),
            )
    with report_now:
        generate = st.button(
            "New drift report",
            key="home_drift",
            icon=":material/analytics:",
            width="stretch",
            disabled=not has_champion or identity.disabled(Action.DRIFT_REPORT),
            help=identity.why(Action.DRIFT_REPORT, "Compares recent predictions with the reference."),
        )
    with predict:
        st.page_link(PAGES["predict"], label="Try a prediction", icon=":material/online_prediction:")
    if generate:
        drift_ui.generate()
        st.rerun()


def _retrain() -> None:
    """Widget callback: start a training run; the page drawn next shows it (not a 2 s old read)."""
    runs_ui.retrain({})
    _last_training.clear()
