"""Service health page in embedded mode, the local stack not running: every service listed with its
state, no traceback, and the metrics section says how to get metrics. (Connected mode, with a real
API and Prometheus, is in tests/integration/test_prometheus_grafana.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")


def test_embedded_mode(project: Path) -> None:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("../pages/service_health.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table["service"].tolist() == ["API", "MLflow", "Prefect", "Prometheus", "Grafana", "Dask"]
    assert table["status"].tolist() == ["● embedded"] * 2 + ["● down"] + ["● not configured"] * 3
    assert "RAKUTEN_DASK_ADDRESS" in table["detail"].iloc[5]
    assert "local stack" in table["detail"].iloc[2]  # the stack's Prefect server, not started here
    assert table["latency"].iloc[0] == "" and "None" not in table.to_string()  # empty cells, never "None"
    assert any("python -m core status" in w.value for w in at.warning)
    assert any("No service metrics" in i.value for i in at.info)


def test_a_service_that_is_down_is_reported_not_raised(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.config import get_settings
    from tests.integration.conftest import _free_port

    monkeypatch.setenv("RAKUTEN_API_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("RAKUTEN_PROMETHEUS_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("RAKUTEN_DASK_ADDRESS", f"tcp://127.0.0.1:{_free_port()}")
    get_settings.cache_clear()
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("../pages/service_health.py").run()
    assert not at.exception, at.exception
    status = dict(zip(at.dataframe[0].value["service"], at.dataframe[0].value["status"], strict=True))
    assert status["API"] == "● down" and status["Prometheus"] == "● down" and status["Dask"] == "● down"
    detail = dict(zip(at.dataframe[0].value["service"], at.dataframe[0].value["detail"], strict=True))
    assert "RAKUTEN_DASK_ADDRESS" in detail["Dask"]
    assert any("Not answering: API, Prefect, Prometheus, Dask" in w.value for w in at.warning)
    assert not [h for h in at.subheader if h.value == "Dask cluster"]


def test_a_dask_cluster_shows_its_workers_and_their_memory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import LocalCluster

    from core.config import get_settings

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        monkeypatch.setenv("RAKUTEN_DASK_ADDRESS", cluster.scheduler_address)
        get_settings.cache_clear()
        at = AppTest.from_file(HOME, default_timeout=60).run()
        at.switch_page("../pages/service_health.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("service")
    assert table.loc["Dask", "status"] == "● up"
    assert (
        table.loc["Dask", "detail"].startswith("2 Dask workers (2 threads, ")
        and cluster.scheduler_address in table.loc["Dask", "detail"]
    )
    workers = at.dataframe[1].value
    assert len(workers) == 2 and workers["threads"].tolist() == [1, 1]
    assert ((workers["memory"] > 0) & (workers["memory"] < 1)).all()


def test_a_version_the_api_refused_to_load_is_shown(project: Path) -> None:
    from core.config import Settings
    from core.identity.guard import Guard
    from core.identity.roles import Action, system

    detail = "refused before loading (mismatch): artifacts/classifier.pkl differs from the digest recorded"
    Guard(Settings(), "api").record(system("api"), Action.LOAD_MODEL, "model:v7", "", "refused", detail)
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("../pages/service_health.py").run()
    assert not at.exception, at.exception
    assert any("refused to load v7" in e.value for e in at.error)
    refused = next(
        d.value for d in at.dataframe if "detail" in d.value.columns and "target" in d.value.columns
    )
    assert refused[["target", "detail"]].values.tolist() == [["model:v7", detail]]


def _health(monkeypatch: pytest.MonkeyPatch, **env: str) -> AppTest:
    from core.config import get_settings

    for var, value in env.items():
        monkeypatch.setenv(var, value)
    get_settings.cache_clear()
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("../pages/service_health.py").run()
    assert not at.exception, at.exception
    return at


def _commands(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.get("code"))


def test_an_api_waiting_for_its_first_model_is_starting_and_not_started_again(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.app.api_fake import api_waiting_for_a_model

    with api_waiting_for_a_model() as url:
        at = _health(monkeypatch, RAKUTEN_API_URL=url)
    table = at.dataframe[0].value.set_index("service")
    assert table.loc["API", "status"] == "● starting"  # it runs: /ready's 503 says it waits for a model
    assert "waiting for a model" in table.loc["API", "detail"]
    assert not any("Not answering: API" in w.value for w in at.warning)
    assert "python -m core serve" not in _commands(at)  # never suggest starting what runs
    assert any("from its /metrics" in c.value for c in at.caption)  # its metrics answer already


def test_an_api_not_running_is_suggested_at_its_configured_address(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.conftest import _free_port

    port = _free_port()
    at = _health(monkeypatch, RAKUTEN_API_URL=f"http://127.0.0.1:{port}")
    commands = _commands(at)
    assert f"python -m core serve --host 127.0.0.1 --port {port}" in commands and "8000" not in commands


def test_embedded_suggests_serving_at_the_configured_port(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _health(monkeypatch, RAKUTEN_API_PORT="8123")
    assert "RAKUTEN_API_URL=http://127.0.0.1:8123" in _commands(at)


def test_ui_links_are_shown_whole(project: Path) -> None:
    """Each UI link reads as its address (no scheme), in a column wide enough for one."""
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("../pages/service_health.py").run()
    table = at.dataframe[0].value
    assert table.columns.tolist().index("open") < table.columns.tolist().index("detail")
    assert table.set_index("service").loc["Prefect", "open"].startswith("http://127.0.0.1:")
    link = json.loads(at.dataframe[0].proto.columns)["open"]
    assert link["width"] == "medium"
    shown = re.search(link["type_config"]["display_text"], "http://127.0.0.1:4200")
    assert shown is not None and shown.group(1) == "127.0.0.1:4200"


def test_http_statuses_are_drawn_in_the_colour_of_their_class() -> None:
    import pandas as pd

    from core.ui.health_view import _COLOUR, requests_figure, status_colour

    assert status_colour("200") == status_colour("201") == _COLOUR["up"]
    assert status_colour("503") == status_colour("5xx") == _COLOUR["down"]
    assert status_colour("422") == _COLOUR["starting"]
    # a 503 counted first once drew the 200s after it in plotly's second colour, red
    requests = pd.DataFrame(
        {"handler": ["/ready", "/predict"], "status": ["503", "200"], "count": [7.0, 3.0]}
    )
    colours = {trace.name: trace.marker.color for trace in requests_figure(requests).data}
    assert colours == {"503": _COLOUR["down"], "200": _COLOUR["up"]}
