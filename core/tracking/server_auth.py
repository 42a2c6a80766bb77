"""The MLflow server's sign-in (`mlflow server --app-name basic-auth`): its configuration file and its users.

Two accounts: the trainer, the server's administrator (the Prefect worker, the Dask workers and the
console train, register and move aliases with it), and a read-only account (the API reads the registry
and downloads the champion through the server). The server runs with workspaces on and
`grant_default_workspace_access`, so an account that is not an administrator gets `default_permission`
(READ) in the default workspace and nothing more: without workspaces, any signed-in account may create
experiments and registered models of its own (and runs and versions in them).

`render_auth_config` is pure; `ensure_users` and `rotate_password` talk to a running server (MLflow's
auth client, signed in with MLflow's own MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD). No
password is ever logged: errors name accounts, never their passwords.
"""

from __future__ import annotations

import configparser
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from pydantic import SecretStr

from core.errors import RakutenError

if TYPE_CHECKING:
    import requests
    from mlflow.server.auth.client import AuthServiceClient

# Lazy imports: MLflow (seconds to import) loads only to talk to a server; writing the configuration file
# as the server's container starts needs none of it.

log = logging.getLogger(__name__)

DEFAULT_PERMISSION: Final = "READ"  # what every signed-in account may do unless it is an administrator
_AUTHORIZATION_FUNCTION: Final = "mlflow.server.auth:authenticate_request_basic_auth"
# the server's own routes (mlflow.server.auth.routes), asked with explicit credentials
_GET_USER: Final = "/api/2.0/mlflow/users/get"
_UPDATE_PASSWORD: Final = "/api/2.0/mlflow/users/update-password"

Change = Literal["created", "password updated", "admin flag updated"]


class ServerAuthError(RakutenError):
    """The MLflow server's users cannot be set up (wrong administrator password, server down)."""


@dataclass(frozen=True)
class Account:
    """One account of the MLflow server (the password is a `SecretStr`: never shown)."""

    username: str
    password: SecretStr
    admin: bool = False


def render_auth_config(
    admin: Account, database_uri: SecretStr, *, default_permission: str = DEFAULT_PERMISSION
) -> str:
    """The basic-auth app's ini file (MLFLOW_AUTH_CONFIG_PATH): the administrator created on the first
    start, the users' database, what the other accounts may do. It holds secrets: write it 0600."""
    if not admin.username or not admin.password.get_secret_value():
        raise ServerAuthError("The MLflow administrator needs a user name and a password.")
    parser = configparser.ConfigParser(interpolation=None)
    parser["mlflow"] = {
        "default_permission": default_permission,
        "database_uri": database_uri.get_secret_value(),
        "admin_username": admin.username,
        "admin_password": admin.password.get_secret_value(),
        "authorization_function": _AUTHORIZATION_FUNCTION,
        # with workspaces on: accounts without a role get default_permission in the default workspace,
        # and may create nothing (creating needs a workspace grant that can `use`; READ cannot)
        "grant_default_workspace_access": "true",
    }
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def connect_auth(tracking_uri: str) -> AuthServiceClient:
    """MLflow's auth client of the server, signed in with MLFLOW_TRACKING_USERNAME/PASSWORD."""
    import mlflow.server

    client: AuthServiceClient = mlflow.server.get_app_client("basic-auth", tracking_uri=tracking_uri)
    return client


def signs_in(tracking_uri: str, username: str, password: SecretStr) -> bool:
    """Whether the server takes this user name and password (False on 401; other failures raise)."""
    response = _request(tracking_uri, username, password, "GET", _GET_USER, params={"username": username})
    if response.status_code == 401:
        return False
    if response.status_code >= 400:
        raise ServerAuthError(
            f"The MLflow server at {tracking_uri} answered {response.status_code} "
            f"when {username!r} signed in."
        )
    return True


def rotate_password(tracking_uri: str, username: str, old: SecretStr, new: SecretStr) -> None:
    """Change an account's password, signed in as that account with its old password (how the
    administrator's own password changes: MLflow reads the configuration's only on the first start)."""
    body = {
        "username": username,
        "password": new.get_secret_value(),
        "current_password": old.get_secret_value(),
    }
    response = _request(tracking_uri, username, old, "PATCH", _UPDATE_PASSWORD, json=body)
    if response.status_code == 401:
        raise ServerAuthError(f"The MLflow server refused {username!r}'s old password.")
    if response.status_code >= 400:
        raise ServerAuthError(
            f"The MLflow server at {tracking_uri} answered {response.status_code} "
            f"to {username!r}'s new password."
        )


def ensure_users(
    auth: AuthServiceClient, tracking_uri: str, accounts: Sequence[Account]
) -> dict[str, list[Change]]:
    """Make the server's accounts match `accounts`: create the missing ones, set a changed password
    (rotation), set the administrator flag. Idempotent: a second call changes nothing. `auth` is signed in
    as an administrator. Returns, per account, what changed."""
    from mlflow.exceptions import MlflowException

    changes: dict[str, list[Change]] = {}
    for account in accounts:
        done: list[Change] = []
        try:
            user = auth.get_user(account.username)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise ServerAuthError(
                    f"Cannot read MLflow user {account.username!r}: {exc.error_code}."
                ) from None
            auth.create_user(account.username, account.password.get_secret_value())
            user = auth.get_user(account.username)
            done.append("created")
        else:
            if not signs_in(tracking_uri, account.username, account.password):
                auth.update_user_password(account.username, account.password.get_secret_value())
                done.append("password updated")
        if bool(user.is_admin) != account.admin:
            auth.update_user_admin(account.username, account.admin)
            done.append("admin flag updated")
        for change in done:
            log.info("MLflow user %s: %s", account.username, change)
        changes[account.username] = done
    return changes


def _request(
    tracking_uri: str, username: str, password: SecretStr, method: str, endpoint: str, **kwargs: object
) -> requests.Response:
    """One request to the server as `username` (MLflow's REST helper, explicit credentials)."""
    import requests
    from mlflow.exceptions import MlflowException
    from mlflow.utils.rest_utils import MlflowHostCreds, http_request

    creds = MlflowHostCreds(tracking_uri, username=username, password=password.get_secret_value())
    try:
        response: requests.Response = http_request(
            creds, endpoint, method, max_retries=0, timeout=10, **kwargs
        )
    except (MlflowException, requests.RequestException) as exc:  # never the request (it holds a password)
        raise ServerAuthError(
            f"The MLflow server at {tracking_uri} cannot be reached ({type(exc).__name__})."
        ) from None
    return response
