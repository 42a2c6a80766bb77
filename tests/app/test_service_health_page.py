"""Service health page in embedded mode, the local stack not running: every service listed with its
state, no traceback, and the metrics section says how to get metrics. (Connected mode, with a real
API and Prometheus, is in tests/integration/test_prometheus_grafana.py.)"""

from __future__ import annotations

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
