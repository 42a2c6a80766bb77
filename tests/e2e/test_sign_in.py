"""Sign-in in a real browser, through a real OpenID Connect provider process (oidc-provider-mock): each
role signs in with the provider's own form, sees who it is, and finds exactly its actions enabled; an
operator's and a reviewer's actions land in the audit trail with their names, which an admin exports
from the Audit page; a click that arrives after the sign-in expired is refused and recorded. The console
runs as deployed (`python -m core.ui.serve`) with sign-in configured."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from core.config import get_settings
from core.stack.programs import CONSOLE_ENVIRONMENT
from core.storage.audit import AuditFilter, AuditTrail
from tests.conftest import build_trained_project, clean_env, free_port
from tests.e2e.conftest import Console, exceptions, snapshot
from tests.oidc_provider import CONSOLE_SIGN_IN, Provider, email_of, running_provider

pytestmark = pytest.mark.slow

USERS: Final = {
    "viewer": ["rakuten-viewers"],
    "reviewer": ["rakuten-reviewers"],
    "operator": ["rakuten-operators"],
    "admin": ["rakuten-admins"],
}
# (page path, page title, button label): the controls checked for each role
CONTROLS: Final = (
    ("", "Rakuten product classification", "Retrain"),
    ("", "Rakuten product classification", "New drift report"),
    ("models", "Models", "Reload the served model"),
    ("review", "Review", "Scan the training labels"),
    ("review", "Review", "Export corrections"),
)
ENABLED: Final = {
    "viewer": set(),
    "reviewer": {"Scan the training labels", "Export corrections"},
    "operator": {"Retrain", "New drift report", "Reload the served model"},
    "admin": {label for *_, label in CONTROLS},
}


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with running_provider(USERS) as running:
        yield running


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained project of this module's own (the actions below write to it)."""
    root = tmp_path_factory.mktemp("sign-in") / "project"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        clean_env(mp, root)
        build_trained_project(root)
    get_settings.cache_clear()
    return root


@pytest.fixture(scope="module")
def signed_console(project: Path, provider: Provider) -> Iterator[Console]:
    """The project's console with sign-in through the provider."""
    with _console(project, provider) as console:
        yield console


@contextmanager
def _console(root: Path, provider: Provider, **settings: str) -> Iterator[Console]:
    """`python -m core.ui.serve` on `root`, signing people in through `provider` (and `settings`)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAKUTEN_")},
        **CONSOLE_ENVIRONMENT,
        "RAKUTEN_ROOT": str(root),
        **CONSOLE_SIGN_IN,
        "RAKUTEN_OIDC_SERVER_METADATA_URL": provider.metadata_url,
        "RAKUTEN_OIDC_REDIRECT_URI": f"{url}/oauth2callback",
        **{f"RAKUTEN_{k.upper()}": v for k, v in settings.items()},
    }
    command = [sys.executable, "-m", "core.ui.serve", "--server.address", "127.0.0.1"]
    command += ["--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none"]
    log = root / f"console-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.3)
        yield Console(url, root, "")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _sign_in(page: Any, console: Console, who: str) -> None:
    """The whole round trip: the console's sign-in button, the provider's form, back signed in."""
    page.goto(console.url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/oauth2/authorize**")
    page.get_by_role("button", name=who, exact=True).click()  # the provider's predefined user
    page.get_by_role("heading", name="Rakuten product classification").first.wait_for()
    page.wait_for_load_state("networkidle")


def _goto(page: Any, console: Console, path: str, title: str) -> None:
    page.goto(f"{console.url}/{path}")
    page.get_by_role("heading", name=title, exact=True).first.wait_for()
    page.wait_for_load_state("networkidle")


def test_nobody_sees_a_page_before_signing_in(page: Any, signed_console: Console) -> None:
    page.goto(f"{signed_console.url}/models")
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.get_by_role("heading", name="Models", exact=True).count() == 0


@pytest.mark.parametrize("who", list(USERS))
def test_each_role_signs_in_and_sees_exactly_its_actions(
    page: Any, signed_console: Console, screenshots: Path, who: str
) -> None:
    _sign_in(page, signed_console, who)
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert email_of(who) in sidebar and who in sidebar.split(email_of(who), 1)[1]
    assert page.get_by_role("button", name="Sign out").count() == 1
    seen = ""
    for path, title, label in CONTROLS:
        if path != seen:
            _goto(page, signed_console, path, title)
            seen = path
        button = page.get_by_role("button", name=label, exact=True).first
        assert button.is_enabled() == (label in ENABLED[who]), (who, label)
    assert not exceptions(page)
    snapshot(page, screenshots / f"signed-in-{who}.png")


def test_actions_are_recorded_with_who_did_them_and_an_admin_exports_them(
    browser: Any, signed_console: Console, screenshots: Path
) -> None:
    def fresh() -> Any:
        context = browser.new_context(viewport={"width": 1300, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        return context, tab

    context, tab = fresh()
    _sign_in(tab, signed_console, "operator")
    _goto(tab, signed_console, "models", "Models")
    tab.get_by_role("button", name="Reload the served model").click()
    tab.get_by_text("In-process model:").first.wait_for()
    context.close()

    context, tab = fresh()
    _sign_in(tab, signed_console, "reviewer")
    _goto(tab, signed_console, "review", "Review")
    tab.get_by_role("button", name="Export corrections").click()
    tab.get_by_text("corrections exported").first.wait_for()
    context.close()

    context, tab = fresh()
    _sign_in(tab, signed_console, "admin")
    _goto(tab, signed_console, "audit", "Audit trail")
    with tab.expect_download() as download:
        tab.get_by_test_id("stDownloadButton").get_by_role("button").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    snapshot(tab, screenshots / "audit-trail.png")
    context.close()
    done = {(r["actor"], r["roles"], r["action"], r["outcome"], r["entry"]) for r in rows}
    assert ("operator@example.org", "operator", "reload", "done", "console") in done
    assert ("reviewer@example.org", "reviewer", "export_corrections", "done", "console") in done
    assert all(r["via"] == "oidc" for r in rows if r["actor"].endswith("@example.org"))


def test_the_sign_in_secrets_never_reach_a_log_or_the_trail(
    page: Any, signed_console: Console, project: Path
) -> None:
    """After people signed in and acted (this module's tests, and one more sign-in here), neither the
    console's log, nor the audit trail and inference log, nor the MLflow store holds the provider's
    client secret or the cookie secret (whole, or their first 12 characters). Before the expiry test: its
    console, on the same project, rewrites the sign-in secrets this module's console reads."""
    _sign_in(page, signed_console, "admin")
    _goto(page, signed_console, "audit", "Audit trail")
    kept = [*project.glob("console-*.log"), *project.glob("data/*.db*"), project / "mlflow.db"]
    assert any(p.name.startswith("console-") for p in kept)
    leaks = [
        (name, path.name)
        for name in ("RAKUTEN_OIDC_CLIENT_SECRET", "RAKUTEN_OIDC_COOKIE_SECRET")
        for needle in {CONSOLE_SIGN_IN[name], CONSOLE_SIGN_IN[name][:12]}
        for path in kept
        if path.is_file() and needle.encode() in path.read_bytes()
    ]
    assert not leaks, leaks


def test_a_click_after_the_sign_in_expired_is_refused_and_recorded(
    page: Any, project: Path, provider: Provider
) -> None:
    """The page drawn while the operator's sign-in was fresh, the click arriving after it expired (a
    role taken away at the provider ends this way): the action checks again, nothing runs, the
    refusal names the person, and the console asks them to sign in again."""
    session_s = 20.0
    with _console(project, provider, oidc_session_hours=str(session_s / 3600)) as console:
        signed_at = time.monotonic()
        _sign_in(page, console, "operator")
        _goto(page, console, "models", "Models")
        reload = page.get_by_role("button", name="Reload the served model")
        assert reload.is_enabled()
        page.wait_for_timeout(max(0.0, session_s + 2 - (time.monotonic() - signed_at)) * 1000)
        reload.click()
        page.get_by_text("sign in again").first.wait_for()
    refused = AuditTrail.open(f"sqlite:///{project / 'data' / 'inference.db'}").read(
        AuditFilter(outcomes=["refused"], actions=["reload"])
    )
    assert refused[["actor", "via", "entry"]].values.tolist()[0] == [
        email_of("operator"),
        "oidc-expired",
        "console",
    ]
