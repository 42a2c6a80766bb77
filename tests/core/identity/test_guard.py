"""The one check and the one audit write: `Guard.acting` records exactly one row per action — done,
refused (the body never ran) or failed (with the error) — and `cli_principal` says who runs a command:
RAKUTEN_TOKEN's owner, the local user in local development only, else nobody (with what to set)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import RakutenError
from core.identity.guard import ANONYMOUS, BREAK_GLASS, Authenticator, Guard, cli_principal
from core.identity.roles import Action, Forbidden, Principal, Role, Unauthenticated, local_user
from core.identity.service_tokens import create_token
from core.storage.audit import AuditFilter, AuditTrail
from tests.conftest import free_port

OPERATOR = Principal(name="bob", roles=frozenset({Role.OPERATOR}), via="oidc", subject="b-1")
VIEWER = Principal(name="vic", roles=frozenset({Role.VIEWER}), via="service-token")


@pytest.fixture
def settings(project: Path) -> Settings:
    return Settings(root=project)


@pytest.fixture
def trail(settings: Settings) -> AuditTrail:
    return AuditTrail.open(str(settings.audit_url))


def rows(trail: AuditTrail) -> list[dict[str, object]]:
    return trail.read(AuditFilter()).to_dict("records")[::-1]


def test_done_is_one_row_with_what_the_body_added(settings: Settings, trail: AuditTrail) -> None:
    guard = Guard(settings, "cli", _trail=trail)
    with guard.acting(OPERATOR, Action.PROMOTE, target="model:v7", reason="better", origin="run-1") as act:
        act.detail = "champion v6 → v7"
    [row] = rows(trail)
    assert {k: row[k] for k in ("actor", "roles", "via", "action", "target", "reason", "outcome")} == {
        "actor": "bob",
        "roles": "operator",
        "via": "oidc",
        "action": "promote",
        "target": "model:v7",
        "reason": "better",
        "outcome": "done",
    }
    assert (row["detail"], row["entry"], row["origin"]) == ("champion v6 → v7", "cli", "run-1")


def test_a_record_written_in_the_body_s_transaction_commits_or_rolls_back_with_it(
    settings: Settings, trail: AuditTrail
) -> None:
    """The feedback route's way: the action and its record in one transaction — one row when it
    commits; when it rolls back, no trace of it but the failure, recorded once."""
    guard = Guard(settings, "api", _trail=trail)
    with guard.acting(OPERATOR, Action.RELOAD, target="p:1") as act, trail.engine.begin() as conn:
        act.detail = "in the same transaction"
        act.record_in(conn)
    assert [(r["outcome"], r["detail"]) for r in rows(trail)] == [("done", "in the same transaction")]
    with (
        pytest.raises(RuntimeError),
        guard.acting(OPERATOR, Action.RELOAD, target="p:2") as act,
        trail.engine.begin() as conn,
    ):
        act.record_in(conn)
        raise RuntimeError("the insert after it failed")
    assert [(r["target"], r["outcome"]) for r in rows(trail)] == [("p:1", "done"), ("p:2", "failed")]


def test_refused_is_one_row_and_the_body_never_runs(settings: Settings, trail: AuditTrail) -> None:
    guard = Guard(settings, "api", _trail=trail)
    ran = []
    with pytest.raises(Forbidden), guard.acting(VIEWER, Action.ROLLBACK, target="model:champion"):
        ran.append(True)
    assert ran == []
    [row] = rows(trail)
    assert (row["actor"], row["outcome"], row["entry"]) == ("vic", "refused", "api")
    assert "may not roll the champion back" in str(row["detail"])
    assert row["origin"]  # no origin given: this host's name


def test_failed_is_one_row_with_the_error_and_the_error_goes_on(
    settings: Settings, trail: AuditTrail
) -> None:
    guard = Guard(settings, "flow", _trail=trail)
    with (
        pytest.raises(RakutenError, match="no version 9"),
        guard.acting(OPERATOR, Action.PROMOTE, target="model:v9") as act,
    ):
        act.target = "model:v9 (checked)"
        raise RakutenError("The registry has no version 9.")
    [row] = rows(trail)
    assert (row["outcome"], row["target"]) == ("failed", "model:v9 (checked)")
    assert row["detail"] == "RakutenError: The registry has no version 9."


def test_an_outcome_set_by_the_body_is_recorded(settings: Settings, trail: AuditTrail) -> None:
    with Guard(settings, "cli", _trail=trail).acting(OPERATOR, Action.RETRAIN, target="run:1") as act:
        act.outcome, act.detail = "failed", "FAILED: a step failed"
    [row] = rows(trail)
    assert (row["outcome"], row["detail"]) == ("failed", "FAILED: a step failed")


def test_refused_elsewhere_is_recorded_once(settings: Settings, trail: AuditTrail) -> None:
    Guard(settings, "api", _trail=trail).refused(
        ANONYMOUS, Action.RELOAD, target="model", detail="invalid_token", origin="10.0.0.7"
    )
    [row] = rows(trail)
    assert (row["actor"], row["roles"], row["via"], row["outcome"]) == ("anonymous", "-", "none", "refused")
    assert (row["detail"], row["origin"]) == ("invalid_token", "10.0.0.7")


def test_the_guard_opens_the_configured_trail(settings: Settings) -> None:
    with Guard(settings, "cli").acting(local_user(), Action.DRIFT_REPORT, target="drift:now"):
        pass
    assert [r["action"] for r in rows(AuditTrail.open(str(settings.audit_url)))] == ["drift_report"]


def test_an_unreachable_trail_does_not_undo_the_action(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(root=project, audit_url=f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/audit")
    done = []
    with (
        caplog.at_level(logging.ERROR, logger="core.identity.guard"),
        Guard(settings, "cli").acting(OPERATOR, Action.RELOAD, target="model") as act,
    ):
        done.append(act.target)
    assert done == ["model"]
    assert any("Audit trail not written" in r.getMessage() for r in caplog.records)


# --- cli_principal ------------------------------------------------------------------------------------
def test_local_development_without_a_token_is_the_local_user(project: Path) -> None:
    assert cli_principal(Settings(root=project)) == local_user()


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_elsewhere_without_a_token_is_nobody(project: Path, environment: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        cli_principal(Settings(root=project, environment=environment))
    assert "RAKUTEN_TOKEN" in str(refused.value) and environment in str(refused.value)
    assert refused.value.reason == "unauthenticated"


@pytest.mark.parametrize("environment", ["local", "production"])
def test_a_service_token_is_its_owner_everywhere(project: Path, environment: str) -> None:
    path = project / "secrets" / "tokens.json"
    token, record = create_token(path, "ci", [Role.OPERATOR])
    found = cli_principal(
        Settings(root=project, environment=environment, service_tokens_file=path, token=token)
    )
    assert found == Principal("service:ci", frozenset({Role.OPERATOR}), "service-token", record.id)


@pytest.mark.parametrize(
    ("credential", "reason"),
    [
        ("rkt_not-a-stored-token", "invalid_token"),
        ("aaa.bbb.ccc", "sign_in_not_configured"),  # an access token, with no provider configured
        ("plain-words", "invalid_token"),
    ],
)
def test_a_token_that_does_not_verify_is_nobody_even_in_local(
    project: Path, credential: str, reason: str
) -> None:
    with pytest.raises(Unauthenticated) as refused:
        cli_principal(Settings(root=project, token=credential))
    assert refused.value.reason == reason


def test_the_break_glass_token_is_an_admin(project: Path) -> None:
    glass = "a-long-random-break-glass-value"
    settings = Settings(root=project, environment="production", api_admin_token=glass, token=glass)
    assert cli_principal(settings) == BREAK_GLASS
    assert Authenticator(settings).configured


def test_an_unreadable_token_file_verifies_nobody_and_says_why(project: Path) -> None:
    path = project / "tokens.json"
    path.write_text("{not json", encoding="utf-8")
    settings = Settings(root=project, service_tokens_file=path, token="rkt_anything")
    authenticator = Authenticator(settings)
    with pytest.raises(Unauthenticated) as refused:
        cli_principal(settings, authenticator)
    assert refused.value.reason == "token_file_unreadable"
    assert authenticator.tokens.error is not None and str(path) in authenticator.tokens.error
