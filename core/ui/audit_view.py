"""Audit page pieces: the trail read with the page's filters, a query-string entry point (the Models
page links here with `?target=model:v7&action=promote`), and the CSV export."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Final

import pandas as pd
import streamlit as st

from core.identity.roles import Action
from core.storage.audit import OUTCOMES, AuditError, AuditFilter

__all__ = [
    "OUTCOMES",
    "AuditError",
    "csv",
    "last_month",
    "model_refusals",
    "outcome_counts",
    "preset",
    "read",
    "refusals_notice",
]
from core.ui.identity import guard

ACTIONS: Final = tuple(str(a) for a in Action)
COLUMNS: Final = (
    "at",
    "actor",
    "roles",
    "via",
    "action",
    "target",
    "reason",
    "outcome",
    "detail",
    "entry",
    "origin",
)
CONFIG: Final = {
    "at": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss"),
    "actor": "who",
    "via": "signed in via",
    "entry": "from",
    "origin": "address",
}


def last_month() -> tuple[date, date]:
    today = date.today()
    return today - timedelta(days=30), today


def preset() -> dict[str, str]:
    """Filters given in the address (a link from another page)."""
    params = st.query_params
    return {key: str(params[key]) for key in ("target", "action", "actor") if key in params}


def actors() -> list[str]:
    try:
        return guard().trail.distinct("actor")
    except AuditError:
        return []


def read(
    who: list[str], actions: list[str], outcomes: list[str], target: str, days: tuple[date, date] | None
) -> pd.DataFrame:
    """The events the filters keep, newest first (at most 5,000); raises `AuditError`."""
    since = until = None
    if days:
        since = datetime.combine(days[0], time.min, tzinfo=UTC)
        until = datetime.combine(days[-1], time.min, tzinfo=UTC) + timedelta(days=1)
    where = AuditFilter(
        actors=who, actions=actions, outcomes=outcomes, target=target, since=since, until=until
    )
    frame = guard().trail.read(where)
    return frame.loc[:, list(COLUMNS)]


def model_refusals(days: int = 7) -> pd.DataFrame:
    """Registered versions a service refused to load lately (files unlike their recorded digests, or
    none recorded), newest first; empty when the trail cannot be read."""
    since = datetime.now(UTC) - timedelta(days=days)
    where = AuditFilter(actions=[str(Action.LOAD_MODEL)], outcomes=["refused"], since=since, limit=50)
    try:
        frame = guard().trail.read(where)
    except AuditError:
        return pd.DataFrame(columns=["at", "target", "detail", "origin"])
    return frame.loc[:, ["at", "target", "detail", "origin"]]


def refusals_notice(key: str, days: int = 7) -> None:
    """Say loudly that a version was refused before loading (someone may have tampered with it)."""
    frame = model_refusals(days)
    if frame.empty:
        return
    versions = ", ".join(dict.fromkeys(t.removeprefix("model:") for t in frame["target"]))
    st.error(
        f"The prediction service refused to load {versions} in the last {days} days: its files do not "
        "match the digests recorded when the trainer registered it (or none are recorded). It kept "
        "serving the previous model. Find out who moved the alias; retrain or roll back.",
        icon=":material/gpp_bad:",
    )
    st.dataframe(
        frame,
        hide_index=True,
        key=key,
        column_config={
            "at": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss"),
            "target": "version",
            "detail": st.column_config.TextColumn("why", width="large"),
            "origin": "service",
        },
    )
    st.page_link(
        "../pages/audit.py",
        label="Every refusal in the audit trail",
        icon=":material/history:",
        query_params={"action": str(Action.LOAD_MODEL)},
    )


def csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def outcome_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {o: int((frame["outcome"] == o).sum()) for o in OUTCOMES}
