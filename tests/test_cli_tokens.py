"""`python -m core token create|list|revoke`: the token printed once, alone on standard output; the list
never shows a token or its digest; a revoked token no longer verifies; each change is in the audit trail,
made by the local user (whoever can write the token file), in production as in local development."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.config import Settings, get_settings
from core.identity.roles import Role, local_user
from core.identity.service_tokens import PREFIX, ServiceTokens, read_tokens
from core.storage.audit import AuditFilter, AuditTrail

runner = CliRunner()


@pytest.fixture
def production(project: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A production host with no RAKUTEN_TOKEN: managing tokens needs none."""
    monkeypatch.setenv("RAKUTEN_ENVIRONMENT", "production")
    monkeypatch.delenv("RAKUTEN_TOKEN", raising=False)
    get_settings.cache_clear()
    return Settings()


def test_create_list_revoke_round_trip(production: Settings) -> None:
    created = runner.invoke(app, ["token", "create", "ci", "--role", "operator", "--role", "reviewer"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith(PREFIX) and "\n" not in token  # stdout holds the token alone: capturable
    [record] = read_tokens(production.service_tokens_file)
    assert record.id in created.stderr and record.roles == ("operator", "reviewer")
    principal = ServiceTokens(production.service_tokens_file).verify(token)
    assert principal is not None and principal.name == "service:ci"
    assert principal.roles == {Role.OPERATOR, Role.REVIEWER}

    listed = runner.invoke(app, ["token", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert record.id in listed.output and "ci" in listed.output and "operator" in listed.output
    assert record.sha256 not in listed.output and token not in listed.output

    revoked = runner.invoke(app, ["token", "revoke", record.id])
    assert revoked.exit_code == 0, revoked.output
    assert read_tokens(production.service_tokens_file) == []
    assert ServiceTokens(production.service_tokens_file).verify(token) is None

    rows = AuditTrail.open(str(production.audit_url)).read(AuditFilter()).to_dict("records")[::-1]
    assert [(r["action"], r["target"], r["outcome"], r["entry"]) for r in rows] == [
        ("manage_tokens", f"token:{record.id} (ci)", "done", "cli"),
        ("manage_tokens", f"token:{record.id} (ci)", "done", "cli"),
    ]
    assert {r["actor"] for r in rows} == {local_user().name}
    assert all(token not in str(r) and record.sha256 not in str(r) for r in rows)


def test_expiry_and_refusals(production: Settings) -> None:
    created = runner.invoke(app, ["token", "create", "nightly", "--role", "viewer", "--days", "7"])
    assert created.exit_code == 0, created.output
    [record] = read_tokens(production.service_tokens_file)
    assert record.expires_at is not None

    unknown = runner.invoke(app, ["token", "revoke", "0123456789ab"])
    assert unknown.exit_code == 2 and "No service token with id '0123456789ab'" in unknown.output
    no_role = runner.invoke(app, ["token", "create", "bare"])
    assert no_role.exit_code == 2 and "Missing option '--role'" in no_role.output
    blank = runner.invoke(app, ["token", "create", " ", "--role", "viewer"])
    assert blank.exit_code == 2 and "needs a name" in blank.output
    assert [t.name for t in read_tokens(production.service_tokens_file)] == ["nightly"]

    rows = AuditTrail.open(str(production.audit_url)).read(AuditFilter(outcomes=["failed"]))
    assert len(rows) == 2 and set(rows["action"]) == {"manage_tokens"}  # the unknown id, the blank name
