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
    assert table["service"].tolist() == ["API", "MLflow", "Prefect", "Prometheus", "Grafana"]
    assert table["status"].tolist() == ["● embedded"] * 2 + ["● down"] + ["● not configured"] * 2
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
    get_settings.cache_clear()
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("../pages/service_health.py").run()
    assert not at.exception, at.exception
    status = dict(zip(at.dataframe[0].value["service"], at.dataframe[0].value["status"], strict=True))
    assert status["API"] == "● down" and status["Prometheus"] == "● down"
    assert any("Not answering: API, Prefect, Prometheus" in w.value for w in at.warning)
