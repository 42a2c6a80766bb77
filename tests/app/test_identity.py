"""Who uses the console (AppTest): nobody gets in without signing in when sign-in is configured; each
role sees exactly its actions enabled (the others disabled with the reason); a click that arrives after
the role went is refused and recorded; break-glass; the console refuses to serve outside local without
sign-in; the Audit page lists, filters and exports the trail. The real sign-in through a provider in a
browser: tests/e2e/test_sign_in.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings, get_settings
from core.identity.roles import NEEDS, Action, local_user
from core.storage.audit import AuditEvent, AuditFilter, AuditTrail
from tests.oidc_provider import CONSOLE_SIGN_IN, signed_in

HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")
# (page, button key, action): controls every trained project draws
CONTROLS = (
    ("overview.py", "home_retrain", Action.RETRAIN),
    ("overview.py", "home_drift", Action.DRIFT_REPORT),
    ("models.py", "reload", Action.RELOAD),
    ("drift.py", "generate", Action.DRIFT_REPORT),
    ("review.py", "review_scan", Action.SCAN_LABELS),
    ("review.py", "review_export", Action.EXPORT_CORRECTIONS),
)
ENABLED = {
    "rakuten-viewers": set(),
    "rakuten-reviewers": {"review_scan", "review_export"},
    "rakuten-operators": {"home_retrain", "home_drift", "reload", "generate"},
    "rakuten-admins": {"home_retrain", "home_drift", "reload", "generate", "review_scan", "review_export"},
}


@pytest.fixture
def signed(trained_project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The session's trained project with sign-in configured; the trail in a private database."""
    for name, value in CONSOLE_SIGN_IN.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RAKUTEN_AUDIT_URL", f"sqlite:///{tmp_path / 'audit.db'}")
    get_settings.cache_clear()
    yield trained_project
    get_settings.cache_clear()


def _open(user: dict[str, object] | None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60)
    if user is not None:
        at.user = user
    at.run()
    assert not at.exception, at.exception
    if page and page != "overview.py":
        at.switch_page(f"../pages/{page}").run()
        assert not at.exception, at.exception
    return at


def _trail() -> AuditTrail:
    return AuditTrail.open(str(Settings().audit_url))


def test_nobody_gets_in_without_signing_in(signed: Path) -> None:
    at = _open({"is_logged_in": False})
    assert at.button(key="sign_in").label == "Sign in"
    assert not at.metric  # no page drawn: not even the overview's figures
    assert not [w for w in at.text_input if w.key == "break_glass_input"]  # no break-glass configured


def test_a_sign_in_older_than_a_session_must_be_renewed(signed: Path) -> None:
    """Roles taken away at the provider must not live on in the console's long-lived cookie."""
    old = signed_in("olga", "rakuten-operators") | {"iat": int(time.time()) - 9 * 3600}
    at = _open(old)
    assert not at.metric and at.button(key="sign_in")
    assert any("over 8 hours old" in w.value for w in at.warning)
    fresh = signed_in("olga", "rakuten-operators") | {"iat": int(time.time()) - 60}
    assert _open(fresh).metric


@pytest.mark.parametrize("group", list(ENABLED))
def test_each_role_sees_exactly_its_actions_enabled(signed: Path, group: str) -> None:
    seen: dict[str, AppTest] = {}
    for page, key, action in CONTROLS:
        at = seen.get(page) or _open(signed_in("pat", group), page)
        seen[page] = at
        button = at.button(key=key)
        assert button.disabled == (key not in ENABLED[group]), (group, key)
        if button.disabled:
            assert f"needs the {NEEDS[action]} role" in (button.help or ""), (group, key)
    sidebar = " ".join(m.value for m in seen["overview.py"].sidebar.markdown)
    assert "pat@example.org" in sidebar and group.removeprefix("rakuten-").rstrip("s") in sidebar
    assert seen["overview.py"].button(key="sign_out")


def test_someone_with_no_role_sees_nothing(signed: Path) -> None:
    at = _open(signed_in("eve", "marketing"))
    assert not at.metric
    assert any("no role" in w.value for w in at.warning)
    assert at.button(key="sign_out")


def test_a_click_after_the_role_went_is_refused_and_recorded(signed: Path) -> None:
    """The page drawn for an operator, the click arriving for a viewer (a stale page, a forged rerun):
    the callback checks again — nothing runs, the refusal is in the trail."""
    at = _open(signed_in("olga", "rakuten-operators"), "models.py")
    assert not at.button(key="reload").disabled
    at.user = signed_in("olga", "rakuten-viewers")
    at.button(key="reload").click().run()
    assert any("may not reload the served model" in e.value for e in at.error), [e.value for e in at.error]
    assert at.metric[0].value == "v1"
    refused = _trail().read(AuditFilter(outcomes=["refused"]))
    assert refused[["actor", "roles", "action", "entry"]].values.tolist() == [
        ["olga@example.org", "viewer", "reload", "console"]
    ]


def test_break_glass_signs_in_as_an_admin_and_is_recorded(
    signed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAKUTEN_CONSOLE_ADMIN_TOKEN", "break-glass-0123456789")
    get_settings.cache_clear()
    at = _open({"is_logged_in": False})
    at.text_input(key="break_glass_input").input("wrong").run()
    at.button(key="break_glass").click().run()
    assert any("Wrong break-glass token" in e.value for e in at.error)
    assert not at.metric
    at.text_input(key="break_glass_input").input("break-glass-0123456789").run()
    at.button(key="break_glass").click().run()
    assert at.metric  # in, as an admin
    assert not at.button(key="home_retrain").disabled
    events = _trail().read()
    assert events[["actor", "outcome", "detail"]].values.tolist() == [
        ["break-glass", "done", "break-glass sign-in"],
        ["anonymous", "refused", "wrong break-glass token"],
    ]


def test_the_console_refuses_to_serve_outside_local_without_sign_in(
    trained_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAKUTEN_ENVIRONMENT", "production")
    get_settings.cache_clear()
    at = _open(None)
    assert not at.metric
    (error,) = at.error
    assert "refuses to start without sign-in" in error.value
    assert "RAKUTEN_OIDC_SERVER_METADATA_URL" in error.value and "RAKUTEN_OIDC_CLIENT_SECRET" in error.value


def test_the_embedded_default_is_one_local_user_with_every_role(trained_project: Path) -> None:
    at = _open(None)
    assert not at.button(key="home_retrain").disabled
    assert local_user().name in " ".join(m.value for m in at.sidebar.markdown)
    assert not [b for b in at.button if b.key == "sign_out"]


def test_audit_page_filters_links_and_exports(signed: Path) -> None:
    trail = _trail()
    for actor, action, target, outcome in [
        ("olga@example.org", "promote", "model:v7", "done"),
        ("olga@example.org", "rollback", "model:v6", "done"),
        ("vic@example.org", "promote", "model:v7", "refused"),
    ]:
        event = AuditEvent(actor, "operator", "oidc", action, target, "because", outcome, "console")  # type: ignore[arg-type]
        trail.record(event)
    at = AppTest.from_file(HOME, default_timeout=60)
    at.user = signed_in("pat", "rakuten-viewers")
    at.query_params["target"] = "model:v7"
    at.run()
    at.switch_page("../pages/audit.py").run()
    assert not at.exception, at.exception
    shown = at.dataframe[0].value
    assert sorted(shown["actor"]) == ["olga@example.org", "vic@example.org"]
    assert {m.label: m.value for m in at.metric}["Refused"] == "1"
    at.multiselect[2].select("refused").run()  # the outcome filter
    assert at.dataframe[0].value["actor"].tolist() == ["vic@example.org"]
    assert at.get("download_button")
