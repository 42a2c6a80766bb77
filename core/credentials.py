"""The deployment's secrets: which environment variables hold one, which values are refused outside local
development (unset, a placeholder, too short), and fresh values for a new `.env`.

Pure functions over a mapping of variables (the CLI passes the process environment or a `.env` file's
values): the full stack's one-shot `secrets-check` service runs `python -m core secrets check` before
anything else starts, so containers that do not run our code (PostgreSQL, MinIO, Grafana, Keycloak) are
refused a placeholder too, by the variable's name."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from core.config import is_placeholder


@dataclass(frozen=True)
class Secret:
    """One secret variable of the full stack."""

    name: str
    min_length: int = 16
    required: bool = True  # the full stack refuses to start without it (`${NAME:?…}` in docker-compose.yml)
    # how a fresh value is made: `token` (URL-safe random), `minio` (MinIO takes 8–40 characters),
    # `auth_string` (`user:password`), `service_token` (only `python -m core token create` makes one)
    kind: Literal["token", "minio", "auth_string", "service_token"] = "token"


SECRETS: Final = (
    Secret("POSTGRES_PASSWORD"),
    Secret("MINIO_ROOT_PASSWORD", kind="minio"),
    Secret("MINIO_MLFLOW_SECRET_KEY", kind="minio"),
    Secret("MINIO_DVC_SECRET_KEY", kind="minio"),
    Secret("MINIO_API_SECRET_KEY", kind="minio"),
    Secret("GRAFANA_ADMIN_PASSWORD"),
    Secret("MLFLOW_TRAINER_PASSWORD"),
    Secret("MLFLOW_READER_PASSWORD"),
    Secret("MLFLOW_FLASK_SERVER_SECRET_KEY"),
    Secret("PREFECT_AUTH_STRING", kind="auth_string"),
    Secret("KEYCLOAK_ADMIN_PASSWORD"),
    Secret("KEYCLOAK_DEMO_PASSWORD", min_length=12),  # typed by people trying the stack
    Secret("RAKUTEN_OIDC_CLIENT_SECRET"),
    Secret("RAKUTEN_OIDC_COOKIE_SECRET", min_length=32),
    Secret("CONSOLE_SERVICE_TOKEN", kind="service_token"),
    Secret("RAKUTEN_API_ADMIN_TOKEN", required=False),  # break-glass: optional
    Secret("RAKUTEN_CONSOLE_ADMIN_TOKEN", required=False),
)
# Other variables of ours whose name says they hold a secret are checked too (unknown: same rules).
_SECRET_NAME: Final = re.compile(r"(PASSWORD|SECRET|SECRET_KEY|TOKEN|AUTH_STRING)$")
_NOT_SECRETS: Final = frozenset({"RAKUTEN_API_PREDICT_REQUIRES_TOKEN"})  # a switch, named after a token
_OURS: Final = (
    "RAKUTEN_",
    "POSTGRES_",
    "MINIO_",
    "GRAFANA_",
    "KEYCLOAK_",
    "CONSOLE_",
    "MLFLOW_",
    "PREFECT_",
)
_MINIO_MAX: Final = 40  # MinIO refuses longer secret keys


def is_secret_name(name: str) -> bool:
    """Whether a variable's name says it holds a secret: it ends in PASSWORD, SECRET, SECRET_KEY, TOKEN
    or AUTH_STRING (access keys and user names are identifiers, not secrets)."""
    return bool(_SECRET_NAME.search(name)) and name not in _NOT_SECRETS


def _known() -> dict[str, Secret]:
    return {secret.name: secret for secret in SECRETS}


def _checked(environ: Mapping[str, str]) -> list[Secret]:
    known = _known()
    extra = [
        Secret(name, required=False, kind="auth_string" if name.endswith("AUTH_STRING") else "token")
        for name in sorted(environ)
        if name not in known and name.startswith(_OURS) and is_secret_name(name)
    ]
    return [*SECRETS, *extra]


def refusal(secret: Secret, value: str | None) -> str | None:
    """Why this value of the secret cannot be used outside local development (None: it can)."""
    if value is None or not value.strip():
        return "is not set" if secret.required else None
    if is_placeholder(value):
        if secret.kind == "service_token":
            return "is a placeholder: make one (python -m core token create console --role operator)"
        return "is a placeholder: set a real secret (python -m core secrets generate)"
    if len(value) < secret.min_length:
        return f"is too short: {len(value)} characters, at least {secret.min_length}"
    if secret.kind == "minio" and len(value) > _MINIO_MAX:
        return f"is too long for MinIO: {len(value)} characters, at most {_MINIO_MAX}"
    if secret.kind == "auth_string" and ":" not in value:
        return "is not of the form user:password"
    return None


def refusals(environ: Mapping[str, str]) -> dict[str, str]:
    """Every secret variable this environment may not start with, and why (empty: all are usable):
    the full stack's secrets and any other of ours named like one. Never the values themselves."""
    found = {}
    for secret in _checked(environ):
        reason = refusal(secret, environ.get(secret.name))
        if reason:
            found[secret.name] = reason
    return found


def enforced(environ: Mapping[str, str]) -> bool:
    """Whether refusals stop a start: everywhere but local development (`RAKUTEN_ENVIRONMENT`)."""
    return environ.get("RAKUTEN_ENVIRONMENT", "local").strip().lower() != "local"


def fresh_value(secret: Secret) -> str | None:
    """A new random value for the secret (None for a service token: `python -m core token create`)."""
    if secret.kind == "service_token":
        return None
    if secret.kind == "minio":
        return secrets.token_urlsafe(24)  # 32 characters
    if secret.kind == "auth_string":
        return f"rakuten:{secrets.token_urlsafe(32)}"
    return secrets.token_urlsafe(32)  # 43 URL-safe characters: fit in database URLs unquoted


def generate() -> dict[str, str | None]:
    """A fresh value for every secret of the full stack (None where only the platform can make one)."""
    return {secret.name: fresh_value(secret) for secret in SECRETS}
