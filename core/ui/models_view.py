"""The Models page's view-model: version badges, the promotion timeline and the promote / roll back /
reload actions (each behind a reason and a confirmation); the registry through `core.ui.mlflow_access`.

Actions run in widget callbacks, before the page is drawn again, so the page shows the registry as the
action left it; their outcome is kept in the session for one rerun (`flash`).
"""
# Size: the Models page's view-model: versions, badges, the promotion timeline and its guarded actions.

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.config import CHALLENGER_ALIAS, CHAMPION_ALIAS
from core.identity.roles import Action, Forbidden
from core.params import ParamsError, PromotionParams, load_params
from core.tracking.integrity import DIGEST_TAG
from core.tracking.registry import RegistryError, VersionInfo
from core.tracking.training_runs import challenger_of, champion_of, history_table, manual_gate, versions_table
from core.ui import identity, mlflow_access
from core.ui.cached import settings
from core.ui.components import plural
from core.ui.mlflow_access import registry

if TYPE_CHECKING:  # MLflow loads when a client is made
    pass

# Lazy imports: the API client and the in-process model load with the reload action, not to draw the page.

_FLASH: Final = "models_flash"
AUDIT_PAGE: Final = "../pages/audit.py"
_BADGE: Final = {CHAMPION_ALIAS: "green", CHALLENGER_ALIAS: "orange"}
VERSIONS_CONFIG: Final = {
    "version": st.column_config.NumberColumn("version", format="v%d", width="small"),
    "aliases": st.column_config.MultiselectColumn(
        "aliases",
        options=[CHAMPION_ALIAS, CHALLENGER_ALIAS],
        color=[_BADGE[CHAMPION_ALIAS], _BADGE[CHALLENGER_ALIAS]],
        width=120,  # a whole "challenger" badge
    ),
    "weighted_f1": st.column_config.NumberColumn("weighted F1", format="%.4f", width=100),
    "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss"),
    "run_id": st.column_config.TextColumn("run", width="small"),
    "commit": st.column_config.TextColumn("git commit", width="small"),
    "data": st.column_config.TextColumn("data version", width=105),
    "corrections": st.column_config.NumberColumn(
        "corrections",
        help="Reviewed labels the version was trained with (its run keeps the file)",
        format="%d",
    ),
    "digests": st.column_config.CheckboxColumn(
        "digests",
        help="The SHA-256 of its files, recorded at registration: without them the API refuses to load it",
        width="small",
    ),
    "gate": st.column_config.TextColumn("gate verdict", width="large"),
}
HISTORY_CONFIG: Final = {
    "at": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss"),
    "from_version": st.column_config.NumberColumn("from", format="v%d", width="small"),
    "to_version": st.column_config.NumberColumn("to", format="v%d", width="small"),
    "reason": st.column_config.TextColumn("reason", width="large"),
}


@dataclass(frozen=True)
class Registered:
    """The registered model as the page shows it."""

    versions: list[VersionInfo]
    champion: VersionInfo | None
    challenger: VersionInfo | None
    table: pd.DataFrame  # one row per version: aliases, score, lineage, gate verdict
    history: pd.DataFrame  # every alias move
    previous_champion: int | None


def registered() -> Registered | None:
    """The versions, aliases and history (None while nothing is registered: looking creates no store)."""
    found = None if mlflow_access.store_missing() else mlflow_access.registry()
    versions = found.versions() if found else []
    if found is None or not versions:
        return None
    return Registered(
        versions,
        champion_of(versions),
        challenger_of(versions),
        versions_table(versions),
        history_table(found.history()),
        found.previous_champion(),
    )


def corrections_note(versions: list[VersionInfo]) -> str:
    """What reviewed labels the newest version was trained with (its run keeps the file)."""
    newest = versions[0]
    count = int(newest.tags.get("data.corrections") or 0)
    if not count:
        return f"v{newest.version} was trained on the downloaded labels alone (no reviewed labels)."
    sha = newest.tags.get("data.corrections_sha256", "")[:12]
    return (
        f"v{newest.version} was trained with {plural(count, 'reviewed label')} (corrections file `{sha}`, "
        "kept in its run's artifacts under `corrections/`)."
    )


def promotion_rules() -> PromotionParams:
    """The gate's rules from params.yaml (the defaults, with a warning, when the file is invalid)."""
    try:
        return load_params(settings().params_file).promotion
    except ParamsError as exc:
        st.warning(f"{exc} — using the default promotion rules.", icon=":material/warning:")
        return PromotionParams()


# --- rendering ------------------------------------------------------------------------------------
def alias_badges(version: VersionInfo | None, empty: str = "none") -> None:
    if version is None:
        st.badge(empty, color="gray")
        return
    for alias in version.aliases:
        st.badge(f"{alias} · v{version.version}", color=_BADGE.get(alias, "blue"))  # type: ignore[arg-type]


def history_timeline(history: pd.DataFrame) -> None:
    """The champion's version as a step line over time, and every alias move as a marker."""
    if history.empty:
        st.caption("No alias move recorded yet.")
        return
    # plotly cannot serialise pandas' NA: plain ints and text only
    moves = pd.DataFrame(
        {
            "at": history["at"],
            "version": history["to_version"].astype(int),
            "from": [f"v{v}" if pd.notna(v) else "—" for v in history["from_version"]],
            **{c: history[c].astype(str) for c in ("seq", "alias", "kind", "actor", "reason")},
        }
    )
    champion = moves[moves["alias"] == CHAMPION_ALIAS]
    fig = px.scatter(
        moves,
        x="at",
        y="version",
        color="kind",
        symbol="alias",
        hover_data={"seq": True, "from": True, "actor": True, "reason": True},
        color_discrete_map={"promote": "#2ca02c", "rollback": "#d62728", "challenger": "#ff7f0e"},
        labels={"at": "", "version": "version"},
        height=300,
    )
    fig.update_traces(marker={"size": 12})
    if not champion.empty:
        fig.add_trace(
            go.Scatter(
                x=champion["at"],
                y=champion["version"],
                mode="lines",
                line={"shape": "hv", "color": "#2ca02c", "width": 2},
                name="champion",
                hoverinfo="skip",
            )
        )
    versions = sorted(set(moves["version"]))
    # whole versions only, and only those that exist (one version: one tick, not v0–v2)
    fig.update_yaxes(
        tickmode="array",
        tickvals=versions,
        ticktext=[f"v{v}" for v in versions],
        range=[min(versions) - 0.5, max(versions) + 0.5],
    )
    # moves seconds apart would get millisecond ticks: a date-time format a person reads
    fig.update_xaxes(tickformat="%d %b %H:%M", hoverformat="%Y-%m-%d %H:%M:%S")
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0))
    st.plotly_chart(fig, width="stretch", key="history_chart")


def audit_links(versions: list[VersionInfo], champion: VersionInfo | None) -> None:
    """One click from a version to who moved it, with which role, and why (the audit trail)."""
    numbers = [v.version for v in versions]
    if not numbers:
        return
    pick, link = st.columns([1, 3], vertical_alignment="bottom")
    start = numbers.index(champion.version) if champion is not None and champion.version in numbers else 0
    number = pick.selectbox("Version", numbers, index=start, format_func=lambda n: f"v{n}", key="audit_v")
    link.page_link(
        AUDIT_PAGE,
        label=f"Who promoted or rolled back v{number}, and why?",
        icon=":material/history:",
        query_params={"target": f"model:v{number}"},
    )


def show_flash() -> None:
    """The outcome of the last action, once."""
    flash = st.session_state.pop(_FLASH, None)
    if flash:
        kind, text = flash
        (st.success if kind == "success" else st.error)(text)


# --- actions --------------------------------------------------------------------------------------
def promote_panel(versions: list[VersionInfo], champion: VersionInfo | None) -> None:
    """Pick a version, see what the gate says, give a reason, confirm, promote."""
    candidates = [v for v in versions if champion is None or v.version != champion.version]
    if not candidates:
        st.caption("No other version to promote.")
        return
    by_number = {v.version: v for v in candidates}
    number = st.selectbox(
        "Version to promote",
        list(by_number),
        format_func=lambda n: _version_label(by_number[n]),
        key="promote_version",
    )
    chosen = by_number[number]
    unsigned = DIGEST_TAG not in chosen.tags
    if unsigned:
        st.error(
            f"v{chosen.version} has no recorded file digests: the prediction service would refuse to load "
            "it and keep serving the current champion. Retrain to register a version with digests.",
            icon=":material/gpp_bad:",
        )
    decision = manual_gate(chosen, champion, promotion_rules())
    if decision is None:
        st.warning(f"v{chosen.version} has no recorded weighted F1: the gate cannot judge it.")
    elif decision.promote:
        st.success(f"The gate agrees: {'; '.join(decision.reasons)}.", icon=":material/verified:")
    else:
        st.warning(
            f"The gate would refuse: {'; '.join(decision.reasons)}. Promoting anyway records a gate "
            "override, with your reason, in the promotion history.",
            icon=":material/gpp_maybe:",
        )
    reason = st.text_input("Reason (required)", key="promote_reason", placeholder="why this version")
    confirm = st.checkbox(
        f"I confirm: v{chosen.version} becomes the champion and serves predictions", key="promote_confirm"
    )
    override = decision.summary if decision is not None and not decision.promote else None
    st.button(
        f"Promote v{chosen.version}",
        key="promote",
        type="primary",
        icon=":material/upgrade:",
        disabled=identity.disabled(Action.PROMOTE) or unsigned or not (reason.strip() and confirm),
        help=identity.why(Action.PROMOTE),
        on_click=_promote,
        args=(chosen.version, champion.version if champion else None, override),
    )


def rollback_panel(champion: VersionInfo | None, previous: int | None) -> None:
    """Give the champion alias back to the previous champion, with a reason and a confirmation."""
    if champion is None:
        st.caption("No champion yet: nothing to roll back.")
        return
    if previous is None:  # a form here could only fail: the registry has nothing to go back to
        st.caption(
            f"Nothing to roll back to: champion v{champion.version} has no earlier champion in the history."
        )
        return
    st.caption(f"Champion v{champion.version} → back to v{previous}.")
    reason = st.text_input("Reason (required)", key="rollback_reason", placeholder="what went wrong")
    confirm = st.checkbox(f"I confirm: roll back from v{champion.version}", key="rollback_confirm")
    st.button(
        "Roll back",
        key="rollback",
        icon=":material/undo:",
        disabled=identity.disabled(Action.ROLLBACK) or not (reason.strip() and confirm),
        help=identity.why(Action.ROLLBACK),
        on_click=_rollback,
    )


def reload_panel() -> None:
    """Make the service serve the current champion now (it also follows the alias on its own)."""
    s = settings()
    if s.api_url:
        st.caption(
            f"The API at `{s.api_url}` follows the champion alias on its own (every "
            "`RAKUTEN_API_ALIAS_CHECK_S` seconds of its own settings, 10 by default); reload it now:"
        )
    else:
        st.caption("Predictions run in this console's process, which follows the champion within 10 s:")
    st.button(
        "Reload the served model",
        key="reload",
        icon=":material/sync:",
        on_click=_reload,
        disabled=identity.disabled(Action.RELOAD),
        help=identity.why(Action.RELOAD),
    )


def _reload() -> None:
    from core.serving.client import ApiBackend, ApiRejected, ApiUnavailable
    from core.ui.prediction_view import reload_in_process

    s = settings()
    credential = identity.api_credential()
    try:
        with identity.acting(Action.RELOAD, target="model:champion") as act:
            if not s.api_url:
                act.detail = reload_in_process()
                st.session_state[_FLASH] = ("success", act.detail)
                return
            if credential is None:
                act.outcome, act.detail = "failed", "no credential for the API"
                st.session_state[_FLASH] = (
                    "error",
                    "The console has no credential for the API's admin routes: set RAKUTEN_TOKEN for the "
                    "console (a service token with the operator role: `python -m core token create console "
                    "--role operator` where the API runs).",
                )
                return
            result = ApiBackend(s.api_url).reload(credential)
            act.detail = f"API: {result['outcome']}, serving v{result['version']}"
    except (Forbidden, ApiUnavailable, ApiRejected) as exc:
        st.session_state[_FLASH] = ("error", str(exc))
        return
    st.session_state[_FLASH] = ("success", f"API: {result['outcome']} — serving v{result['version']}.")


def _promote(version: int, expected: int | None, override: str | None) -> None:
    reason = st.session_state.get("promote_reason", "").strip()
    if override:
        reason = f"{reason} [gate override: {override}]"
    try:
        with identity.acting(Action.PROMOTE, target=f"model:v{version}", reason=reason) as act:
            move = registry().promote(
                version, actor=identity.actor(), reason=reason, expected_champion=expected
            )
            act.detail = f"champion v{move.from_version} → v{move.to_version}"
    except (Forbidden, RegistryError) as exc:
        st.session_state[_FLASH] = ("error", str(exc))
        return
    st.session_state[_FLASH] = (
        "success",
        f"v{move.to_version} is now the champion (was v{move.from_version}).",
    )
    _reset("promote")


def _rollback() -> None:
    reason = st.session_state.get("rollback_reason", "").strip()
    try:
        with identity.acting(Action.ROLLBACK, target="model:champion", reason=reason) as act:
            move = registry().rollback(actor=identity.actor(), reason=reason)
            act.target = f"model:v{move.to_version}"
            act.detail = f"champion v{move.from_version} → v{move.to_version}"
    except (Forbidden, RegistryError) as exc:
        st.session_state[_FLASH] = ("error", str(exc))
        return
    st.session_state[_FLASH] = ("success", f"Rolled back: v{move.to_version} is champion again.")
    _reset("rollback")


def _reset(action: str) -> None:
    st.session_state[f"{action}_reason"] = ""
    st.session_state[f"{action}_confirm"] = False


def _version_label(v: VersionInfo) -> str:
    f1 = v.tags.get("weighted_f1")
    parts = [
        f"v{v.version}",
        *v.aliases,
        f"F1 {f1}" if f1 else "no F1",
        v.created_at.strftime("%Y-%m-%d %H:%M"),
    ]
    return " · ".join(parts)
