"""Home (overview) page through AppTest: the platform at a glance on an empty project, on a trained one
and with every configured service down (each card says so; no traceback, no hang). Who may use which
action: tests/app/test_identity.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from tests.integration.conftest import _free_port

HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")


def _open(page: str | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(f"../pages/{page}").run()
        assert not at.exception, at.exception
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _text(at: AppTest) -> str:
    parts = [c.value for c in at.caption] + [m.value for m in at.markdown]
    return "\n".join(str(p) for p in parts)


def test_empty_project_says_what_to_do(project: Path) -> None:
    at = _open()
    assert at.title[0].value == "Rakuten product classification"
    shown = _metrics(at)
    assert shown["Products"] == shown["Champion model"] == shown["Last drift decision"] == "—"
    assert at.button(key="home_prepare").label.startswith("Generate demo data")
    assert at.button(key="home_retrain").label == "Train the first model"
    assert at.button(key="home_drift").disabled  # nothing to compare without a champion
    text = _text(at)
    for service in ("API", "MLflow", "Prefect", "Prometheus", "Grafana"):
        assert f"**{service}**" in text
    assert "predictions run in the console's process" in text
    for badge in ("No data yet", "No model yet", "No report yet"):
        assert badge in text, badge
    # no local stack running here: the training card says so, and how to start it (no traceback)
    assert "Prefect unreachable" in text and "make console" in text


def test_trained_project_at_a_glance(trained_project: Path) -> None:
    at = _open()
    shown = _metrics(at)
    assert shown["Champion model"] == "v1"
    assert int(shown["Products"].replace(",", "")) > 0
    text = _text(at)
    assert "Weighted F1 **0." in text and "champion since" in text
    assert "Version `" in text
    assert at.button(key="home_retrain").label == "Retrain"
    assert not at.button(key="home_drift").disabled


@pytest.fixture
def services_down(trained_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every service configured at an address where nothing listens; the console's environment as
    it is started (`python -m core.ui.serve`, the local stack, compose): its clients fail fast."""
    from core.stack.programs import CONSOLE_ENVIRONMENT

    for var, value in CONSOLE_ENVIRONMENT.items():
        monkeypatch.setenv(var, value)
    dead = f"http://127.0.0.1:{_free_port()}"
    for var, value in {
        "RAKUTEN_MLFLOW_TRACKING_URI": dead,
        "RAKUTEN_PREFECT_API_URL": f"{dead}/api",
        "RAKUTEN_API_URL": dead,
        "RAKUTEN_PROMETHEUS_URL": dead,
        "RAKUTEN_GRAFANA_URL": dead,
    }.items():
        monkeypatch.setenv(var, value)
    get_settings.cache_clear()
    yield dead
    get_settings.cache_clear()


def test_services_down_each_card_says_so(services_down: str) -> None:
    start = time.perf_counter()
    at = _open()
    took = time.perf_counter() - start
    shown = _metrics(at)
    assert shown["Champion model"] == "unreachable"
    assert shown["Last training run"] == "—"
    assert int(shown["Products"].replace(",", "")) > 0  # local files are still read
    text = _text(at)
    assert "cannot be reached" in text
    assert took < 30, f"the page waited {took:.0f} s on services that are down"


@pytest.mark.parametrize("page", ["models.py", "experiments.py"])
def test_tracking_server_down_pages_say_so(services_down: str, page: str) -> None:
    at = _open(page)
    assert any("MLflow server" in e.value and "cannot be reached" in e.value for e in at.error)


# --- every page, whatever is missing -----------------------------------------------------------------
ALL_PAGES = (
    "overview.py",
    "data_explorer.py",
    "review.py",
    "predict.py",
    "pipeline_runs.py",
    "drift.py",
    "service_health.py",
    "experiments.py",
    "models.py",
    "audit.py",
)


def _guidance(at: AppTest) -> str:
    """What the page tells the user: infos, warnings, errors and code blocks (the fixing commands)."""
    found = [*at.info, *at.warning, *at.error, *at.get("code")]
    return "\n".join(str(getattr(e, "value", "")) for e in found)


def test_navigation_lists_every_page() -> None:
    listed = {p.name for p in (Path(HOME).parents[1] / "pages").glob("*.py")}
    assert listed == set(ALL_PAGES)


@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_on_an_empty_project_says_what_to_do(project: Path, page: str) -> None:
    at = _open(page)
    assert at.title, page
    if page != "overview.py":  # Home shows state cards instead (checked above)
        assert _guidance(at).strip(), f"{page} shows no guidance on an empty project"


DOWN_SAYS = {  # page → what it says when every configured service is down
    "predict.py": "cannot answer",
    "pipeline_runs.py": "does not answer",
    "service_health.py": "Not answering: API, MLflow, Prefect, Prometheus, Grafana",
    "experiments.py": "cannot be reached",
    "models.py": "cannot be reached",
    "drift.py": "No drift report yet",  # reports are local files; generating one says what is down
}


@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_with_services_down_says_so(services_down: str, page: str) -> None:
    start = time.perf_counter()
    at = _open(page)
    took = time.perf_counter() - start
    assert took < 20, f"{page} waited {took:.0f} s on services that are down"
    if page in DOWN_SAYS:
        assert DOWN_SAYS[page] in _guidance(at), _guidance(at)


def test_while_the_stack_starts_its_services_are_starting_not_down(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.ui import overview_view

    monkeypatch.setenv("RAKUTEN_API_URL", f"http://127.0.0.1:{_free_port()}")  # nothing answers yet
    get_settings.cache_clear()
    monkeypatch.setattr(overview_view, "stack_starting", lambda: frozenset({"api", "prefect"}))
    at = _open()
    text = _text(at)
    assert "Prefect starting" in text and "Prefect unreachable" not in text
    assert text.count("the local stack is starting it") == 2, text  # the API and Prefect
    # the stack prepares the data while it starts: no second preparation offered beside it
    assert "the data it prepares shows here" in text
    assert not [b for b in at.button if b.key == "home_prepare"]
    monkeypatch.setattr(overview_view, "stack_starting", lambda: frozenset())  # all up: stated as they are
    at.run()
    text = _text(at)
    assert "Prefect unreachable" in text and "the local stack is starting it" not in text
    assert at.button(key="home_prepare").label.startswith("Generate demo data")
