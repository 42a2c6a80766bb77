"""Who may do what: the four roles, the actions they allow, and the person or service asking.

Pure: no I/O. The console, the API, the CLI and the flows all ask `may` / `check` with the same table.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from core.errors import RakutenError


class Role(StrEnum):
    VIEWER = "viewer"
    REVIEWER = "reviewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class Action(StrEnum):
    """Every state-changing action (and the two read actions a deployment may close)."""

    PREDICT = "predict"
    VIEW = "view"
    REVIEW = "review"  # a correction, an undo, /feedback
    EXPORT_CORRECTIONS = "export_corrections"
    IMPORT_CORRECTIONS = "import_corrections"
    SCAN_LABELS = "scan_labels"
    RETRAIN = "retrain"
    CANCEL_RUN = "cancel_run"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    RELOAD = "reload"
    REINGEST = "reingest"
    DRIFT_REPORT = "drift_report"
    MANAGE_TOKENS = "manage_tokens"
    LOAD_MODEL = "load_model"  # a service loading a registered version (refusals are recorded)


_VIEWER: Final = frozenset({Action.PREDICT, Action.VIEW})
_REVIEWER: Final = _VIEWER | {
    Action.REVIEW,
    Action.EXPORT_CORRECTIONS,
    Action.IMPORT_CORRECTIONS,
    Action.SCAN_LABELS,
}
_OPERATOR: Final = _VIEWER | {
    Action.RETRAIN,
    Action.CANCEL_RUN,
    Action.PROMOTE,
    Action.ROLLBACK,
    Action.RELOAD,
    Action.REINGEST,
    Action.DRIFT_REPORT,
}
ALLOWED: Final[Mapping[Role, frozenset[Action]]] = {
    Role.VIEWER: _VIEWER,
    Role.REVIEWER: _REVIEWER,
    Role.OPERATOR: _OPERATOR,
    Role.ADMIN: frozenset(Action),
}
# The least role each action needs, for messages ("needs the operator role").
NEEDS: Final[Mapping[Action, Role]] = {
    action: next(r for r in Role if action in ALLOWED[r]) for action in Action
}
# What a person reads on a control they may not use.
LABELS: Final[Mapping[Action, str]] = {
    Action.PREDICT: "predict",
    Action.VIEW: "view the console",
    Action.REVIEW: "review labels",
    Action.EXPORT_CORRECTIONS: "export corrections",
    Action.IMPORT_CORRECTIONS: "import corrections",
    Action.SCAN_LABELS: "scan the training labels",
    Action.RETRAIN: "start a training run",
    Action.CANCEL_RUN: "cancel a run",
    Action.PROMOTE: "promote a model",
    Action.ROLLBACK: "roll the champion back",
    Action.RELOAD: "reload the served model",
    Action.REINGEST: "ingest the data again",
    Action.DRIFT_REPORT: "build a drift report",
    Action.MANAGE_TOKENS: "manage service tokens",
    Action.LOAD_MODEL: "load a model version",
}


class Forbidden(RakutenError):
    """The principal is known but may not do this."""

    def __init__(self, principal: Principal, action: Action) -> None:
        self.principal, self.action = principal, action
        held = ", ".join(sorted(principal.roles)) or "no role"
        super().__init__(
            f"{principal.name} ({held}) may not {LABELS[action]}: it needs the {NEEDS[action]} role "
            "(or admin). Ask an admin to grant it in the identity provider."
        )


class Unauthenticated(RakutenError):
    """Nobody could be identified: no credential, or one that does not verify. `reason` is a short code."""

    def __init__(self, message: str, reason: str = "unauthenticated") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who asks. `via`: how they proved it (oidc, service-token, local, break-glass, schedule)."""

    name: str
    roles: frozenset[Role]
    via: str
    subject: str = ""

    @property
    def role_names(self) -> str:
        return ",".join(sorted(self.roles)) or "-"

    @property
    def headline(self) -> str:
        """`alice (operator)`: for the sidebar and messages."""
        return f"{self.name} ({', '.join(sorted(self.roles)) or 'no role'})"


def may(principal: Principal, action: Action) -> bool:
    return any(action in ALLOWED[role] for role in principal.roles)


def check(principal: Principal, action: Action) -> None:
    """Raise `Forbidden` unless one of the principal's roles allows the action."""
    if not may(principal, action):
        raise Forbidden(principal, action)


def local_user() -> Principal:
    """The embedded default: the person at this machine, with every role (as before sign-in existed)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "local"
    return Principal(name=f"{name}@local", roles=frozenset(Role), via="local", subject=name)


def system(component: str) -> Principal:
    """A service acting on its own account (the API checking a model before loading it): no role."""
    return Principal(name=f"system:{component}", roles=frozenset(), via="system")


def schedule(flow: str) -> Principal:
    """A scheduled flow acting on its own (monitor-and-retrain): an operator by design."""
    return Principal(name=f"schedule:{flow}", roles=frozenset({Role.OPERATOR}), via="schedule")


def roles_from_claims(claims: Mapping[str, Any], claim: str, mapping: Mapping[str, str]) -> frozenset[Role]:
    """Our roles from a token's claim: a list or a space/comma separated string of the provider's group
    or role names, each mapped by `mapping` (provider name → role). A dotted `claim` reaches into nested
    objects (`realm_access.roles` for Keycloak). Unmapped names grant nothing."""
    value: Any = claims
    for part in claim.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    names: Iterable[Any]
    if value is None:
        names = ()
    elif isinstance(value, str):
        names = value.replace(",", " ").split()
    elif isinstance(value, list | tuple | set | frozenset):
        names = value
    else:
        names = ()
    roles = set()
    for name in names:
        # groups come as `/rakuten-operators` from Keycloak's full-path mapper: compare without it
        text = str(name).strip().lstrip("/")
        role = mapping.get(text)
        if role is not None and role in Role.__members__.values():
            roles.add(Role(role))
    return frozenset(roles)


def display_name(claims: Mapping[str, Any], fallback: str) -> str:
    """The name people know someone by: email, preferred username, name, else the subject."""
    for key in ("email", "preferred_username", "name"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return fallback
