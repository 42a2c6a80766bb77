"""Drift page through AppTest: the empty state says how to get a first report; with reports, the
latest decision (drift → a Retrain button), the reports, the columns, drift over time and the
Evidently report; "Generate report now" without traffic says why there is no report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from core.monitoring.drift import run_drift
from core.monitoring.simulate import Shift
from tests.core.monitoring.test_drift import STRONG, traffic

pytestmark = pytest.mark.slow
HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")


@pytest.fixture
def reports(trained_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The trained project with this test's own reports folder and inference log."""
    from core.config import get_settings

    monkeypatch.setenv("RAKUTEN_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("RAKUTEN_INFERENCE_LOG_URL", f"sqlite:///{tmp_path / 'log.db'}")
    get_settings.cache_clear()
    return Settings(
        root=trained_project,
        reports_dir=tmp_path / "reports",
        inference_log_url=f"sqlite:///{tmp_path / 'log.db'}",
    )


def _open() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=120).run()
    at.switch_page("../pages/drift.py").run()
    assert not at.exception, at.exception
    return at


def test_a_first_report_from_the_console_alone(reports: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """No traffic yet: the page says how many predictions a report needs, sends held-back products
    through the prediction service (here the console's own model: no API configured) with their
    origin logged, and then generates the first report — no terminal involved."""
    monkeypatch.setenv("RAKUTEN_MONITOR_MIN_ROWS", "100")
    at = _open()
    assert any("No drift report yet" in i.value for i in at.info)
    assert at.metric[0].value == "0"
    assert any("100 more predictions are needed" in w.value for w in at.warning)
    at.button(key="generate").click().run()  # no traffic logged: a clear reason, no report
    assert not at.exception, at.exception
    assert any("Only 0 predictions" in w.value for w in at.warning)

    at.number_input(key="traffic_n").set_value(120).run()
    at.button(key="traffic_send").click().run()
    assert not at.exception, at.exception
    assert any("120 answered" in s.value for s in at.success), [e.value for e in at.error]
    assert at.metric[0].value == "120"
    # enough for a report: the form stays (folded away), so a drifted case can still be sent from here
    assert any("Enough for a report" in c.value for c in at.caption)
    assert at.button(key="traffic_send") and at.checkbox(key="traffic_shifted")
    assert any("drifted case" in e.label for e in at.expander)
    assert any("120 simulator" in c.value for c in at.caption)
    from core.storage.inference_log import read_inference_log

    logged = read_inference_log(reports)
    assert len(logged) == 120 and set(logged["origin"]) == {"simulator"}

    at.button(key="generate").click().run()
    assert not at.exception, at.exception
    assert any("New report" in m.value for m in [*at.success, *at.error]), [w.value for w in at.warning]
    assert at.dataframe[0].value["predictions"].tolist() == [120]


def test_reports_decision_history_and_retrain(reports: Settings) -> None:
    from core.tracking.store import load_classifier

    champion = load_classifier(reports, alias="champion")
    now = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    run_drift(reports, champion, 1, current=traffic(reports, champion, Shift()), now=now)
    run_drift(reports, champion, 1, current=traffic(reports, champion, STRONG), now=now + timedelta(hours=1))

    at = _open()
    assert any("Drift detected" in e.value for e in at.error)
    assert at.button(key="retrain")
    assert [m.label for m in at.metric][1:3] == ["Drifted columns", "Drifted share"]
    table = at.dataframe[0].value
    assert len(table) == 2 and table["decision"].tolist() == ["🔴 drift", "🟢 no drift"]
    columns = at.dataframe[1].value
    assert "image_brightness" in columns["column"].tolist() and "yes" in columns["drifted"].tolist()
    assert len(at.get("plotly_chart")) == 3  # drifted share, columns × reports, one column's score
    assert at.selectbox(key="column").value in set(columns.loc[columns["drifted"] == "yes", "column"])
    assert at.get("download_button")

    at.selectbox(key="pick").set_value(table["report"].iloc[1]).run()  # the calm report
    assert not at.exception, at.exception
    # Calm: no drift decision; each of its 14 column tests may still flag by chance (a 5 % level each,
    # and the reference is the 10 % hold-out of 1,500 products): at most one does here.
    assert at.dataframe[1].value["drifted"].tolist().count("yes") <= 1
