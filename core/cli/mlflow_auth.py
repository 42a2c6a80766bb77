"""`python -m core mlflow-auth config|users`: the MLflow server's sign-in (core.tracking.server_auth).

`config` writes the basic-auth app's ini file (MLFLOW_AUTH_CONFIG_PATH, mode 0600) from the environment
before `mlflow server --app-name basic-auth` starts; `users` makes the running server's read-only account
(RAKUTEN_MLFLOW_READER_USERNAME / _PASSWORD) and keeps its password current, signed in as the
administrator (MLFLOW_TRACKING_USERNAME / _PASSWORD). Passwords are never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from core.cli._shared import console, fail
from core.config import Settings, get_settings
from core.tracking.server_auth import (
    Account,
    ServerAuthError,
    connect_auth,
    ensure_users,
    render_auth_config,
    rotate_password,
    signs_in,
)

mlflow_auth_app = typer.Typer(help="The MLflow server's sign-in: its configuration file and its users.")


def _admin(settings: Settings) -> Account:
    if not settings.mlflow_tracking_username or settings.mlflow_tracking_password is None:
        raise ServerAuthError(
            "Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD: the MLflow server's administrator "
            "(the full stack's trainer account)."
        )
    return Account(settings.mlflow_tracking_username, settings.mlflow_tracking_password, admin=True)


@mlflow_auth_app.command("config")
def config(
    path: Annotated[
        Path | None, typer.Argument(help="Where to write it \\[default: MLFLOW_AUTH_CONFIG_PATH].")
    ] = None,
) -> None:
    """Write the server's sign-in configuration (administrator, users' database), owner-readable only."""
    settings = get_settings()
    target = path or settings.mlflow_auth_config_path
    try:
        if target is None:
            raise ServerAuthError("Give a path or set MLFLOW_AUTH_CONFIG_PATH.")
        if settings.mlflow_auth_database_uri is None:
            raise ServerAuthError("Set RAKUTEN_MLFLOW_AUTH_DATABASE_URI: where the server keeps its users.")
        text = render_auth_config(_admin(settings), settings.mlflow_auth_database_uri)
    except ServerAuthError as exc:
        raise fail(exc) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    # created 0600 (never readable by others, even for an instant), replaced whole
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    console.print(f"Wrote the MLflow server's sign-in configuration to {target} (mode 600).")


@mlflow_auth_app.command("users")
def users(
    rotate_admin: Annotated[
        bool,
        typer.Option(
            "--rotate-admin",
            help="MLFLOW_TRACKING_PASSWORD is the administrator's new password: asks for the old one.",
        ),
    ] = False,
) -> None:
    """Create or update the server's read-only account (idempotent; a changed password is set)."""
    settings = get_settings()
    uri = str(settings.mlflow_tracking_uri)
    try:
        admin = _admin(settings)
        if settings.mlflow_reader_password is None:
            raise ServerAuthError("Set RAKUTEN_MLFLOW_READER_PASSWORD: the read-only account's password.")
        if not signs_in(uri, admin.username, admin.password):
            if not rotate_admin:
                raise ServerAuthError(
                    f"The MLflow server refuses {admin.username!r} with MLFLOW_TRACKING_PASSWORD. If it is "
                    "a new password, run this command with --rotate-admin (it asks for the old one)."
                )
            old = SecretStr(typer.prompt(f"Old password of {admin.username}", hide_input=True))
            rotate_password(uri, admin.username, old, admin.password)
            console.print(f"[green]Changed[/] {admin.username}'s password.")
        reader = Account(settings.mlflow_reader_username, settings.mlflow_reader_password)
        changes = ensure_users(connect_auth(uri), uri, [admin, reader])
    except ServerAuthError as exc:
        raise fail(exc) from exc
    for name, done in changes.items():
        console.print(f"MLflow user [bold]{name}[/]: {', '.join(done) or 'up to date'}.")
