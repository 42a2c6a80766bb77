"""Models page through AppTest: versions with aliases and lineage, the promotion history, and the
promote / roll back actions — each needs a reason and a confirmation, is recorded with the signed-in
user (the local user here), and a refused action shows the registry's message instead of raising; no
roll-back form while the champion has no earlier champion to go back to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings, get_settings
from core.identity.roles import local_user
from core.storage.audit import AuditFilter, AuditTrail
from core.tracking.registry import Registry, open_registry
from tests.conftest import build_two_run_project, clean_env

HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")


@pytest.fixture(scope="module")
def two_versions_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with two registered versions, for the tests that move aliases."""
    return build_two_run_project(tmp_path_factory, "models")


@pytest.fixture
def two_versions(two_versions_source: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(two_versions_source)
    clean_env(monkeypatch, two_versions_source)
    yield two_versions_source
    get_settings.cache_clear()


def _registry() -> Registry:
    settings = Settings()
    return open_registry(settings)


def _open() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page("../pages/models.py").run()
    assert not at.exception, at.exception
    return at


def _frame_with(at: AppTest, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _confirm(at: AppTest, action: str, reason: str) -> AppTest:
    at.text_input(key=f"{action}_reason").input(reason).run()
    at.checkbox(key=f"{action}_confirm").check().run()
    assert not at.button(key=action).disabled
    at.button(key=action).click().run()
    assert not at.exception, at.exception
    return at


def test_fresh_project_says_which_command_registers_a_model(project: Path) -> None:
    at = _open()
    assert any("No registered model yet" in i.value for i in at.info)
    assert any("python -m core pipeline" in c.value for c in at.code)


def test_versions_lineage_and_history(trained_project: Path) -> None:
    at = _open()
    assert at.metric[0].value == "v1"
    versions = _frame_with(at, "gate")
    assert versions.loc[0, "version"] == 1
    assert list(versions.loc[0, "aliases"]) == ["champion"]
    assert versions.loc[0, "run_id"] and versions.loc[0, "data"]
    assert versions.loc[0, "digests"]  # recorded at registration: the API will load it
    assert not at.error  # no version refused
    history = _frame_with(at, "reason")
    assert history[["kind", "actor"]].values.tolist() == [["promote", "pipeline"]]
    assert "history_chart" in {c.key for c in at.get("plotly_chart")}
    assert at.caption and not [b for b in at.button if b.key == "promote"]  # nothing else to promote


def test_no_rollback_form_without_an_earlier_champion(trained_project: Path) -> None:
    """One champion, never replaced: a form could only fail, so the page says why there is none."""
    at = _open()
    assert any("Nothing to roll back to: champion v1 has no earlier champion" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "rollback"]
    assert not [t for t in at.text_input if t.key == "rollback_reason"]
    assert _registry().champion() == 1


def test_promote_needs_reason_and_confirmation_then_rollback_restores(two_versions: Path) -> None:
    registry = _registry()
    before = registry.champion()
    other = next(v.version for v in registry.versions() if v.version != before)
    at = _open()
    assert at.selectbox(key="promote_version").value == other
    assert at.button(key="promote").disabled  # no reason, no confirmation yet
    assert any("gate" in m.value.lower() for m in [*at.warning, *at.success])

    at = _confirm(at, "promote", "manual check of the newer model")
    assert registry.champion() == other
    assert any(f"v{other} is now the champion" in s.value for s in at.success)
    assert at.metric[0].value == f"v{other}"
    last = _frame_with(at, "reason").iloc[0]  # newest first
    assert (last["kind"], last["actor"], last["to_version"]) == ("promote", local_user().name, other)
    assert last["reason"].startswith("manual check of the newer model")
    assert at.text_input(key="promote_reason").value == ""  # form reset for the next action

    at = _confirm(at, "rollback", "newer model misbehaves")
    assert registry.champion() == before
    assert any(f"v{before} is champion again" in s.value for s in at.success)
    last = _frame_with(at, "reason").iloc[0]
    assert (last["kind"], last["actor"], last["to_version"]) == ("rollback", local_user().name, before)
    # both recorded once in the audit trail, with the reason (the Audit page's source)
    trail = AuditTrail.open(str(Settings().audit_url)).read(AuditFilter(actions=["promote", "rollback"]))
    assert trail[["action", "target", "outcome", "actor", "entry"]].values.tolist()[:2] == [
        ["rollback", f"model:v{before}", "done", local_user().name, "console"],
        ["promote", f"model:v{other}", "done", local_user().name, "console"],
    ]
    assert trail.iloc[1]["reason"].startswith("manual check of the newer model")


def test_promotion_refused_when_the_champion_changed_meanwhile(two_versions: Path) -> None:
    registry = _registry()
    before = registry.champion()
    other = next(v.version for v in registry.versions() if v.version != before)
    at = _open()
    at.text_input(key="promote_reason").input("stale page").run()
    at.checkbox(key="promote_confirm").check().run()
    registry.promote(other, actor="someone else", reason="promoted from the CLI")  # page is now stale
    at.button(key="promote").click().run()
    assert not at.exception, at.exception
    assert any("Champion is now" in e.value for e in at.error)
    assert registry.champion() == other
    assert at.metric[0].value == f"v{other}"  # the page shows the registry as it is now


def test_a_version_the_api_refused_to_load_is_shown(two_versions: Path) -> None:
    from core.identity.guard import Guard
    from core.identity.roles import Action, system

    detail = "refused before loading (missing): no file digests are recorded for it"
    Guard(Settings(), "api").record(system("api"), Action.LOAD_MODEL, "model:v2", "", "refused", detail)
    at = _open()
    assert any("refused to load v2" in e.value for e in at.error)
    refused = _frame_with(at, "detail")
    assert refused[["target", "detail"]].values.tolist() == [["model:v2", detail]]


def test_a_version_without_digests_cannot_be_promoted(two_versions: Path) -> None:
    from core.config import REGISTERED_MODEL_NAME
    from core.tracking.integrity import DIGEST_TAG

    registry = _registry()
    before = registry.champion()
    other = next(v.version for v in registry.versions() if v.version != before)
    client = registry.client
    recorded = client.get_model_version(REGISTERED_MODEL_NAME, str(other)).tags[DIGEST_TAG]
    client.delete_model_version_tag(REGISTERED_MODEL_NAME, str(other), DIGEST_TAG)
    try:
        at = _open()
        assert any(f"v{other} has no recorded file digests" in e.value for e in at.error)
        at.text_input(key="promote_reason").input("try it anyway").run()
        at.checkbox(key="promote_confirm").check().run()
        assert at.button(key="promote").disabled
        assert registry.champion() == before
    finally:
        client.set_model_version_tag(REGISTERED_MODEL_NAME, str(other), DIGEST_TAG, recorded)
