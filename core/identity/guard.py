"""One permission check and one audit write, whatever the entry point (console, API, CLI, flow).

`Authenticator` turns a bearer credential into a principal (a service token, the provider's access
token, or the break-glass admin token). `Guard.acting(...)` checks the principal's role, runs the
action, and records it once with its outcome: done, refused (no role: nothing ran) or failed (the
error's message). The page that greys a button out is a courtesy; this is the rule.
"""

from __future__ import annotations

import hmac
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

import sqlalchemy as sa

from core.config import Settings
from core.identity.access_tokens import AccessTokenVerifier, looks_like_jwt
from core.identity.roles import Action, Forbidden, Principal, Role, Unauthenticated, check, local_user
from core.identity.service_tokens import PREFIX, ServiceTokens, TokenFileError
from core.storage.audit import AuditError, AuditEvent, AuditTrail, Outcome

log = logging.getLogger(__name__)

BREAK_GLASS: Final = Principal(name="break-glass", roles=frozenset({Role.ADMIN}), via="break-glass")


def verifier_for(settings: Settings) -> AccessTokenVerifier | None:
    """The provider's token verifier, when sign-in is configured."""
    if not settings.sign_in:
        return None
    return AccessTokenVerifier(
        audiences=settings.api_audiences,
        roles_claim=settings.oidc_roles_claim,
        role_map=settings.oidc_role_map,
        metadata_url=settings.oidc_server_metadata_url,
        issuer=settings.oidc_issuer,
        timeout_s=settings.oidc_timeout_s,
    )


class Authenticator:
    """Bearer credential → principal. Built once per process; the token file is re-read on change."""

    def __init__(
        self,
        settings: Settings,
        *,
        tokens: ServiceTokens | None = None,
        verifier: AccessTokenVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens or ServiceTokens(settings.service_tokens_file)
        self.verifier = verifier if verifier is not None else verifier_for(settings)
        glass = settings.api_admin_token.get_secret_value() if settings.api_admin_token else ""
        self._break_glass = glass.encode() if glass else None

    @property
    def configured(self) -> bool:
        """Whether any credential could verify here (else the admin routes say how to set one up)."""
        return bool(self.verifier or self._break_glass or self.settings.service_tokens_file.is_file())

    def principal(self, credential: str) -> Principal:
        credential = credential.strip()
        if not credential:
            raise Unauthenticated("No credential was given.")
        if self._break_glass is not None and hmac.compare_digest(credential.encode(), self._break_glass):
            return BREAK_GLASS
        if credential.startswith(PREFIX):
            try:
                found = self.tokens.verify(credential)
            except TokenFileError as exc:  # the previous tokens stay in force; this is the first read
                raise Unauthenticated(str(exc), "token_file_unreadable") from exc
            if found is None:
                raise Unauthenticated(
                    "The service token is not valid (unknown, revoked or expired).", "invalid_token"
                )
            return found
        if looks_like_jwt(credential):
            if self.verifier is None:
                raise Unauthenticated(
                    "Access tokens are not accepted here: no identity provider is configured "
                    "(RAKUTEN_OIDC_SERVER_METADATA_URL, RAKUTEN_OIDC_CLIENT_ID).",
                    "sign_in_not_configured",
                )
            return self.verifier.verify(credential)
        raise Unauthenticated(
            "The credential is neither a service token (rkt_…) nor an access token (a JWT).", "invalid_token"
        )


def cli_principal(settings: Settings, authenticator: Authenticator | None = None) -> Principal:
    """Who runs a command: RAKUTEN_TOKEN's owner when set; else, in local development only, the local
    user (every role); elsewhere nobody (`Unauthenticated`, saying what to set)."""
    if settings.token is not None and settings.token.get_secret_value():
        return (authenticator or Authenticator(settings)).principal(settings.token.get_secret_value())
    if settings.environment == "local":
        return local_user()
    raise Unauthenticated(
        f"Outside local development (RAKUTEN_ENVIRONMENT={settings.environment}) commands that change "
        "something act for someone: set RAKUTEN_TOKEN to a service token (`python -m core token create "
        "NAME --role operator` on the API's host) or to an access token from your identity provider."
    )


@dataclass
class Act:
    """What the action inside `Guard.acting` may add to its record."""

    target: str
    detail: str = ""
    outcome: Outcome = "done"
    _write: Callable[[Act, sa.Connection], None] | None = field(default=None, repr=False)
    written: bool = False

    def record_in(self, conn: sa.Connection) -> None:
        """Write the record now, in the body's own transaction on the trail's database (one commit for
        the action and its record; the guard writes nothing more unless the body then fails)."""
        assert self._write is not None
        self._write(self, conn)
        self.written = True


@dataclass
class Guard:
    """The check and the trail for one entry point (`entry`: console, api, cli, flow)."""

    settings: Settings
    entry: str
    _trail: AuditTrail | None = field(default=None, repr=False)

    @cached_property
    def trail(self) -> AuditTrail:
        return self._trail or AuditTrail.open(str(self.settings.audit_url))

    @contextmanager
    def acting(
        self, who: Principal, action: Action, *, target: str, reason: str = "", origin: str = ""
    ) -> Iterator[Act]:
        """Check, run the body, record once. Raises `Forbidden` (recorded as refused) before the body."""

        def write(act: Act, conn: sa.Connection) -> None:
            event = self._event(who, action, act.target, reason, act.outcome, act.detail, origin)
            self.trail.record(event, conn)

        act = Act(target=target, _write=write)
        try:
            check(who, action)
        except Forbidden as exc:
            self.record(who, action, act.target, reason, "refused", str(exc), origin)
            raise
        try:
            yield act
        except BaseException as exc:
            # the body's transaction (and a record written in it) rolled back: the failure is recorded
            self.record(who, action, act.target, reason, "failed", f"{type(exc).__name__}: {exc}", origin)
            raise
        if not act.written:
            self.record(who, action, act.target, reason, act.outcome, act.detail, origin)

    def refused(self, who: Principal, action: Action, *, target: str, detail: str, origin: str = "") -> None:
        """Record a refusal decided elsewhere (a credential that does not verify, a role checked earlier)."""
        self.record(who, action, target, "", "refused", detail, origin)

    def record(
        self,
        who: Principal,
        action: Action,
        target: str,
        reason: str,
        outcome: Outcome,
        detail: str,
        origin: str = "",
    ) -> None:
        event = self._event(who, action, target, reason, outcome, detail, origin)
        try:
            self.trail.record(event)
        except AuditError as exc:
            # the action has happened (or was refused) either way: say so loudly, lose nothing else
            log.error(
                "Audit trail not written (%s %s on %s by %s): %s", outcome, action, target, who.name, exc
            )

    def _event(
        self,
        who: Principal,
        action: Action,
        target: str,
        reason: str,
        outcome: Outcome,
        detail: str,
        origin: str,
    ) -> AuditEvent:
        return AuditEvent(
            actor=who.name,
            roles=who.role_names,
            via=who.via,
            action=str(action),
            target=target,
            reason=reason,
            outcome=outcome,
            entry=self.entry,
            origin=origin or _host(),
            detail=detail,
        )


ANONYMOUS: Final = Principal(name="anonymous", roles=frozenset(), via="none")
_LOOPBACK: Final = ("localhost", "::1", "[::1]")


def console_refusal(settings: Settings, address: str | None) -> str | None:
    """Why the console must not serve anyone (None: it may). Sign-in may be off only in local
    development on a loopback address; half-configured sign-in is refused everywhere."""
    if settings.sign_in:
        missing = settings.sign_in_missing
        if not missing:
            return None
        return f"Sign-in is configured only in part: set {', '.join(missing)} (docs/security.md)."
    host = (address or "").strip()
    loopback = host in _LOOPBACK or host.startswith("127.")
    if settings.environment == "local" and loopback:
        return None
    exposed = (
        f"RAKUTEN_ENVIRONMENT is {settings.environment}"
        if settings.environment != "local"
        else f"it listens on {host or 'every network interface'}, beyond this machine"
    )
    return (
        f"The console refuses to start without sign-in: {exposed}. Configure the identity provider "
        "(RAKUTEN_OIDC_SERVER_METADATA_URL, RAKUTEN_OIDC_CLIENT_ID, RAKUTEN_OIDC_CLIENT_SECRET, "
        "RAKUTEN_OIDC_COOKIE_SECRET: docs/security.md), or run it on 127.0.0.1 in local development."
    )


def _host() -> str:
    try:
        return socket.gethostname()
    except OSError:
        return ""
