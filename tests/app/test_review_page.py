"""Review page through AppTest: the training queue after a scan, decisions recorded as the signed-in
reviewer (accept, another class, unclear), undo, export; the production queue from the inference log;
who may review."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from core.config import Settings, get_settings
from core.identity.roles import local_user
from core.review.inbox import open_store
from core.storage.audit import AuditFilter, AuditTrail
from core.storage.corrections_file import read_corrections_file
from core.storage.inference_log import InferenceRecord, open_engine, write
from tests.conftest import build_trained_project, clean_env
from tests.oidc_provider import CONSOLE_SIGN_IN, signed_in

HOME = str(Path(__file__).resolve().parents[2] / "app" / "Home.py")


@pytest.fixture(scope="module")
def reviewed_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("review") / "project"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        clean_env(mp, root)
        build_trained_project(root)
    get_settings.cache_clear()
    return root


@pytest.fixture
def reviewed(reviewed_source: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(reviewed_source)
    clean_env(monkeypatch, reviewed_source)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield reviewed_source
    get_settings.cache_clear()


def _sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CONSOLE_SIGN_IN.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def _open(kind: str = "production", user: dict[str, object] | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=90)
    if user is not None:
        at.user = user
    at.run()
    at.switch_page("../pages/review.py").run()
    assert not at.exception, at.exception
    if kind != "production":
        at.session_state["review_kind"] = kind
        at.run()
    return at


def _act(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def _beside(at: AppTest, key: str) -> Block:
    """The column holding the button `key`: what it shows is what the user sees next to the button."""
    return next(c for c in at.columns if any(b.key == key for b in c.button))


def _shown_key(at: AppTest) -> str:
    return next(c.value for c in at.caption if "`" in c.value and "·" in c.value).split("`")[1]


def test_training_queue_decisions_undo_and_export(reviewed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _sign_in(monkeypatch)
    at = _open("training", signed_in("ana", "rakuten-reviewers"))
    assert any("python -m core review scan" in c.value for c in at.code)  # before the first scan
    _act(at, "review_scan")
    assert any("Scan done" in s.value for s in _beside(at, "review_scan").success)
    first = _shown_key(at)
    assert first.startswith("train:")
    # each number says whose it is: the scan's out-of-fold model, the champion, its text view
    assert any("label scan's out-of-fold model" in c.value for c in at.caption)
    assert any("cross-validated model that never saw it" in c.value for c in at.caption)
    assert any("What pushed champion v1's text view" in m.value for m in at.markdown)

    _act(at, "review_accept")
    second = _shown_key(at)
    assert second != first
    at.selectbox(key="review_class").select(2705).run()
    _act(at, "review_relabel")
    third = _shown_key(at)
    _act(at, "review_unclear")
    stored = open_store(Settings()).table()
    assert stored["product_key"].tolist() == [first, second, third]
    assert stored["verdict"].tolist()[1:] == [
        "relabel" if stored["old_code"].iloc[1] != 2705 else "confirm",
        "unclear",
    ]
    assert set(stored["reviewer"]) == {"ana@example.org"}  # who signed in, not a name typed

    _act(at, "review_undo_button")
    assert _shown_key(at) == third  # back in its queue
    assert open_store(Settings()).table()["product_key"].tolist() == [first, second]

    _act(at, "review_export")
    # the confirmation stands next to the button that produced it, not at the top of the page
    assert any("2 corrections exported" in s.value for s in _beside(at, "review_export").success)
    beside = {s.value for s in _beside(at, "review_export").success}
    assert all(s.value in beside for s in at.success if "exported" in s.value)
    exported = read_corrections_file(Settings().corrections_file)
    assert exported["product_key"].tolist() == [first, second]
    audit = next(d.value for d in at.dataframe if "undone_by" in d.value.columns)
    assert len(audit) == 3 and (audit["state"] == "undone").sum() == 1
    trail = AuditTrail.open(str(Settings().audit_url)).read(AuditFilter(actors=["ana@example.org"]))
    assert trail["action"].tolist()[::-1] == [
        "scan_labels",
        "review",
        "review",
        "review",
        "review",
        "export_corrections",
    ]
    assert set(trail["outcome"]) == {"done"} and set(trail["roles"]) == {"reviewer"}


def test_production_queue_shows_unsure_answers(reviewed: Path) -> None:
    engine = open_engine(str(Settings().inference_log_url))
    now = datetime.now(UTC)
    write(
        engine,
        [
            InferenceRecord(now, f"req-{i}", "text", 0, 1, title, 0, False, code, confidence, 1.0)
            for i, (title, code, confidence) in enumerate(
                [
                    ("Peluche lapin", 1280, 0.21),
                    ("Piscine tubulaire", 2583, 0.97),
                    ("Carte Pokémon", 1160, 0.33),
                ]
            )
        ],
    )
    engine.dispose()
    at = _open()
    assert _shown_key(at) in {"req-0:0", "req-2:0"}  # the sure answer is not queued
    assert any("Served by v1" in m.value for m in at.markdown)  # the logged answer's model, named
    assert any("the champion's answer" in m.value for m in at.markdown)
    _act(at, "review_accept")
    _act(at, "review_skip")
    assert any("Nothing to review" in i.value for i in at.info)
    stored = open_store(Settings()).table().query("source == 'production'")
    assert stored["reviewer"].tolist() == [local_user().name] and stored["verdict"].tolist() == ["confirm"]


@pytest.mark.parametrize("groups", [["rakuten-viewers"], ["rakuten-operators"]])
def test_only_reviewers_decide(reviewed: Path, monkeypatch: pytest.MonkeyPatch, groups: list[str]) -> None:
    _sign_in(monkeypatch)
    at = _open("training", signed_in("vic", *groups))
    assert at.segmented_control  # the queues are open to every role
    assert any("needs the reviewer role" in i.value for i in at.info)
    for key in ("review_scan", "review_export"):
        assert at.button(key=key).disabled, key
        assert "needs the reviewer role" in (at.button(key=key).help or "")


def test_a_decision_made_after_the_role_went_is_refused(
    reviewed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page drawn for a reviewer, the click arriving for someone who is not one (a stale page, a
    forged rerun): the callback checks again, records the refusal, and nothing is written."""
    _sign_in(monkeypatch)
    monkeypatch.setenv("RAKUTEN_AUDIT_URL", f"sqlite:///{reviewed / 'refusals.db'}")
    get_settings.cache_clear()
    at = _open("training", signed_in("ana", "rakuten-reviewers"))
    _act(at, "review_scan")
    before = len(open_store(Settings()).table())
    assert not at.button(key="review_accept").disabled
    at.user = signed_in("ana", "rakuten-viewers")
    _act(at, "review_accept")
    assert any("may not review labels" in e.value for e in at.error), [e.value for e in at.error]
    assert len(open_store(Settings()).table()) == before
    refused = AuditTrail.open(str(Settings().audit_url)).read(AuditFilter(outcomes=["refused"]))
    assert refused[["actor", "action", "roles"]].values.tolist() == [["ana@example.org", "review", "viewer"]]
