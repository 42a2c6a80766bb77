"""The MLflow server's sign-in file: what `render_auth_config` writes and `mlflow-auth config` protects."""

from __future__ import annotations

import configparser
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from core.cli import app
from core.tracking.server_auth import Account, ServerAuthError, render_auth_config

ADMIN = Account("trainer", SecretStr("p%ss:w0rd-with-%-signs"), admin=True)


def test_the_config_names_the_admin_the_database_and_read_only_defaults() -> None:
    text = render_auth_config(ADMIN, SecretStr("postgresql+psycopg2://u:p%40ss@db/mlflow_auth"))
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    section = parser["mlflow"]
    assert section["admin_username"] == "trainer"
    assert section["admin_password"] == "p%ss:w0rd-with-%-signs"  # kept as is (no interpolation)
    assert section["database_uri"] == "postgresql+psycopg2://u:p%40ss@db/mlflow_auth"
    assert section["default_permission"] == "READ"
    assert section["grant_default_workspace_access"] == "true"
    assert section["authorization_function"] == "mlflow.server.auth:authenticate_request_basic_auth"


def test_an_admin_without_a_password_is_refused() -> None:
    with pytest.raises(ServerAuthError):
        render_auth_config(Account("trainer", SecretStr("")), SecretStr("sqlite:///auth.db"))


def test_the_cli_writes_it_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.config import get_settings

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "trainer")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "a-secret-nobody-sees-0123")
    monkeypatch.setenv("RAKUTEN_MLFLOW_AUTH_DATABASE_URI", f"sqlite:///{tmp_path / 'auth.db'}")
    get_settings.cache_clear()
    target = tmp_path / "auth" / "basic_auth.ini"
    try:
        done = CliRunner().invoke(app, ["mlflow-auth", "config", str(target)])
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "a-secret-nobody-sees" in target.read_text() and "a-secret-nobody-sees" not in done.output
