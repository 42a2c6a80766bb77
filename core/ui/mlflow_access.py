"""The console's way to MLflow: one client per tracking URI (cached for the session), the registry, and
whether the store can be used right now — what every page that shows runs or versions starts from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from core.tracking import store
from core.tracking.registry import Registry, open_registry
from core.tracking.training_runs import tracking_store_missing
from core.ui.cached import settings

if TYPE_CHECKING:  # MLflow loads when a client is made
    from mlflow import MlflowClient


@st.cache_resource(show_spinner=False)
def _client(tracking_uri: str) -> MlflowClient:
    return store.connect(settings())


def client() -> MlflowClient:
    """The `MlflowClient` of the configured store (one per tracking URI)."""
    return _client(str(settings().mlflow_tracking_uri))


@st.cache_data(ttl=5, show_spinner=False)
def _tracking_problem(tracking_uri: str) -> str | None:
    try:
        store.check_tracking(settings())
    except store.TrackingError as exc:
        return str(exc)
    return None


def tracking_problem() -> str | None:
    """Why the tracking server cannot be used right now (checked at most every 5 s), else None."""
    return _tracking_problem(str(settings().mlflow_tracking_uri))


def store_missing() -> bool:
    """No local tracking store yet: nothing has been trained (and looking must not create one)."""
    return tracking_store_missing(str(settings().mlflow_tracking_uri))


def registry() -> Registry:
    return open_registry(settings(), client())
