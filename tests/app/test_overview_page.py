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
from tests.app.api_fake import api_waiting_for_a_model
from tests.app.prefect_fake import FakePrefect, run
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


# --- the first training, followed from Home (fake Prefect and API: tests/app/prefect_fake.py, api_fake.py) --
@pytest.fixture
def first_training(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePrefect]:
    """The first training run is at its `train` step; the API runs and waits for a model."""
    fake = FakePrefect([run("eager-heron", "RUNNING", minutes_ago=2, running_step="train")])
    fake.install(monkeypatch)
    with api_waiting_for_a_model() as url:
        monkeypatch.setenv("RAKUTEN_API_URL", url)
        get_settings.cache_clear()
        yield fake
    get_settings.cache_clear()


def test_during_the_first_training_the_api_waits_for_it_and_no_second_start_is_offered(
    first_training: FakePrefect,
) -> None:
    at = _open()
    text = _text(at)
    assert "answered 503" not in text, text  # the API runs: it is not down
    assert ":orange-badge[:material/hourglass_top: starting]" in text
    assert "waiting for a model: training run `eager-heron` is at train (step 3 of 5)" in text, text
    assert "`eager-heron` · started 2 min ago · train (step 3 of 5)" in text  # the training card
    button = at.button(key="home_retrain")
    assert button.disabled and "eager-heron" in button.label and "Train the first model" not in button.label


def test_the_api_waiting_without_a_training_run_is_starting_not_down(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FakePrefect().install(monkeypatch)
    with api_waiting_for_a_model() as url:
        monkeypatch.setenv("RAKUTEN_API_URL", url)
        get_settings.cache_clear()
        text = _text(_open())
    assert "answered 503" not in text
    assert "waiting for a model to serve (the registry has no champion yet)" in text


def test_train_the_first_model_answers_with_the_run_name(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakePrefect().install(monkeypatch)
    at = _open()
    assert at.button(key="home_retrain").label == "Train the first model"
    at.button(key="home_retrain").click().run()
    assert not at.exception, at.exception
    started = fake.runs[0]
    success = " ".join(s.value for s in at.success)
    assert f"Started training run {started.name}" in success and started.id not in success
    button = at.button(key="home_retrain")  # the next drawing shows it running, not a second start
    assert button.disabled and started.name in button.label
