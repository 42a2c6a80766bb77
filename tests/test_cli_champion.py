"""`python -m core promote|rollback` act for someone: outside local development only RAKUTEN_TOKEN's owner,
and only with the operator role; the registry's history and the audit trail both name who acted, and a
refusal is in the trail too. In local development, with no token, the local user acts (as before)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.config import REGISTERED_MODEL_NAME, Settings, get_settings
from core.identity.roles import Role, local_user
from core.identity.service_tokens import create_token, read_tokens, revoke_token
from core.storage.audit import AuditFilter, AuditTrail
from core.tracking import store
from core.tracking.integrity import DIGEST_TAG, encode
from core.tracking.registry import open_registry

runner = CliRunner()


def _text(output: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.fixture
def registered(project: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Two registered versions (tiny runs, no training: promotion only moves an alias; their file digests
    recorded as the trainer records them), no champion, and no credential in the environment."""
    monkeypatch.delenv("RAKUTEN_TOKEN", raising=False)
    settings = Settings()
    client = store.connect(settings)
    experiment = store.ensure_experiment(client, settings)
    client.create_registered_model(REGISTERED_MODEL_NAME)
    for _ in range(2):
        run = client.create_run(experiment)
        client.create_model_version(
            REGISTERED_MODEL_NAME,
            source=f"{run.info.artifact_uri}/model",
            run_id=run.info.run_id,
            tags={DIGEST_TAG: encode({"classifier.pkl": "0" * 64})},
        )
    return settings


def _production(monkeypatch: pytest.MonkeyPatch, settings: Settings, roles: list[Role] | None) -> str:
    """RAKUTEN_ENVIRONMENT=production, and RAKUTEN_TOKEN a fresh service token with `roles` (None: none
    set); the token's name."""
    monkeypatch.setenv("RAKUTEN_ENVIRONMENT", "production")
    get_settings.cache_clear()
    if roles is not None:
        name = "-".join(roles) + "-bot"
        token, _ = create_token(settings.service_tokens_file, name, roles)
        monkeypatch.setenv("RAKUTEN_TOKEN", token)
        return name
    return ""


def _trail(settings: Settings) -> list[dict[str, object]]:
    rows = AuditTrail.open(str(settings.audit_url)).read(AuditFilter())
    return rows.to_dict("records")[::-1]  # oldest first


def test_outside_local_without_a_token_promote_is_refused_and_audited(
    registered: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _production(monkeypatch, registered, None)
    result = runner.invoke(app, ["promote", "1", "--reason", "looks good"])
    assert result.exit_code == 2
    assert "RAKUTEN_TOKEN" in _text(result.output) and "Traceback" not in result.output
    assert open_registry(registered).champion() is None
    [row] = _trail(registered)
    assert (row["actor"], row["action"], row["outcome"], row["entry"]) == (
        "anonymous",
        "promote",
        "refused",
        "cli",
    )
    assert row["target"] == "model:v1" and "RAKUTEN_TOKEN" in str(row["detail"])


def test_a_viewer_token_is_refused_and_audited_with_its_name(
    registered: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _production(monkeypatch, registered, [Role.VIEWER])
    result = runner.invoke(app, ["promote", "1", "--reason", "looks good"])
    assert result.exit_code == 2
    assert "may not promote a model" in _text(result.output) and "operator" in _text(result.output)
    assert open_registry(registered).champion() is None
    [row] = _trail(registered)
    assert (row["actor"], row["roles"], row["via"]) == (f"service:{name}", "viewer", "service-token")
    assert (row["action"], row["outcome"], row["reason"]) == ("promote", "refused", "looks good")


def test_an_operator_token_promotes_and_rolls_back_in_its_name(
    registered: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _production(monkeypatch, registered, [Role.OPERATOR])
    for version in ("1", "2"):
        result = runner.invoke(app, ["promote", version, "--reason", f"v{version} is better"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["rollback", "--reason", "v2 misbehaves"])
    assert result.exit_code == 0, result.output

    registry = open_registry(registered)
    assert registry.champion() == 1
    assert [(m.kind, m.actor) for m in registry.history()] == [
        ("promote", f"service:{name}"),
        ("promote", f"service:{name}"),
        ("rollback", f"service:{name}"),
    ]
    rows = _trail(registered)
    assert [(r["action"], r["target"], r["outcome"]) for r in rows] == [
        ("promote", "model:v1", "done"),
        ("promote", "model:v2", "done"),
        ("rollback", "model:v1", "done"),
    ]
    assert {r["actor"] for r in rows} == {f"service:{name}"}
    assert rows[1]["reason"] == "v2 is better" and rows[1]["detail"] == "champion v1 → v2"


def test_a_failed_promotion_is_audited_as_failed(
    registered: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _production(monkeypatch, registered, [Role.OPERATOR])
    result = runner.invoke(app, ["promote", "9", "--reason", "typo"])
    assert result.exit_code == 2 and "has no version 9" in _text(result.output)
    [row] = _trail(registered)
    assert row["outcome"] == "failed" and "has no version 9" in str(row["detail"])


def test_a_revoked_token_no_longer_acts(registered: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, registered, [Role.OPERATOR])
    [record] = read_tokens(registered.service_tokens_file)
    revoke_token(registered.service_tokens_file, record.id)
    result = runner.invoke(app, ["promote", "1", "--reason", "after revocation"])
    assert result.exit_code == 2 and "not valid" in _text(result.output)
    [row] = _trail(registered)
    assert (row["actor"], row["outcome"]) == ("anonymous", "refused")
    assert str(row["detail"]).startswith("invalid_token")


def test_in_local_development_without_a_token_the_local_user_acts(registered: Settings) -> None:
    result = runner.invoke(app, ["promote", "1", "--reason", "first"])
    assert result.exit_code == 0, result.output
    me = local_user()
    assert [m.actor for m in open_registry(registered).history()] == [me.name]
    [row] = _trail(registered)
    assert (row["actor"], row["via"], row["outcome"]) == (me.name, "local", "done")
