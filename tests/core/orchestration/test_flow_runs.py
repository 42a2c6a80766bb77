"""The read side's edge: a Prefect server nothing listens for is stated at once (Prefect's own client
retries a refused connect for seconds — a stack still starting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from core.orchestration import flow_runs as runs
from core.orchestration.flow_runs import PrefectUnavailable, prefect_client
from tests.conftest import free_port


def test_a_refused_connect_is_stated_before_any_client_is_made(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, prefect_port=free_port())
    before = dict(runs._CLIENTS)
    stated = pytest.raises(PrefectUnavailable, match=r"connection refused\): if the stack is starting")
    with stated, prefect_client(settings) as client:
        client.hello()
    assert before == runs._CLIENTS


def _run(tags: tuple[str, ...], parameters: dict[str, object]) -> runs.RunInfo:
    return runs.RunInfo(
        "id", "training-1", "training-pipeline", "RUNNING", None, None, None, None, parameters, tags=tags
    )


def test_a_run_names_who_started_it() -> None:
    tags = runs.run_tags("alice@example.com", "oidc")
    assert tags == ["user:alice@example.com", "via:oidc"]
    assert runs.tag_value(["training", *tags], runs.VIA_TAG) == "oidc"
    assert runs.tag_value(["training"], runs.USER_TAG) is None
    assert _run(("training", *tags), {"actor": "someone else"}).user == "alice@example.com"
    assert _run(("training",), {"actor": "console"}).user == "console"  # a run started before the tags
    assert _run((), {}).user is None
