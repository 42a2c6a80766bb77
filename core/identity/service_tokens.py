"""Named service tokens for machines (the console calling the API, a CI job, a scheduler): stored hashed.

One JSON file (`Settings.service_tokens_file`) lists each token's name, roles, SHA-256 digest and id;
the token itself is shown once, when it is made. Several tokens may be valid at once — rotating is
making the new one, moving the clients, revoking the old — and a running API sees the file change
within a second, no restart. Tokens are random (256 bits), so a plain digest is enough: there is no
password to stretch. Every comparison is constant-time and looks at every stored digest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from core.identity.roles import Principal, Role

PREFIX: Final = "rkt_"
_CHECK_EVERY_S: Final = 1.0


class TokenFileError(ValueError):
    """The service-token file cannot be read or does not hold what it should."""


@dataclass(frozen=True)
class ServiceToken:
    id: str  # the digest's first 12 hex digits: names a token in lists and revocations
    name: str
    roles: tuple[str, ...]
    sha256: str
    created_at: str
    expires_at: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and datetime.fromisoformat(self.expires_at) <= now


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_tokens(path: Path) -> list[ServiceToken]:
    """The file's tokens (none when it does not exist)."""
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        tokens = [ServiceToken(**{**t, "roles": tuple(t["roles"])}) for t in raw.get("tokens", [])]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise TokenFileError(f"Cannot read the service tokens in {path}: {exc}") from exc
    for token in tokens:
        unknown = [r for r in token.roles if r not in Role.__members__.values()]
        if unknown:
            raise TokenFileError(f"{path}: token {token.id} ({token.name}) has unknown roles {unknown}.")
    return tokens


def _write(path: Path, tokens: Iterable[ServiceToken]) -> None:
    payload = {"tokens": [asdict(t) | {"roles": list(t.roles)} for t in tokens]}
    path.parent.mkdir(parents=True, exist_ok=True)
    # private from the first byte (digests only, but nobody else needs them); one rename replaces it
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def create_token(
    path: Path, name: str, roles: Iterable[Role], *, days: int | None = None
) -> tuple[str, ServiceToken]:
    """Make a token, store its digest, return it (the only time it is seen) with its record."""
    roles = tuple(sorted({Role(r) for r in roles}))
    if not name.strip() or not roles:
        raise ValueError("A service token needs a name and at least one role.")
    token = PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    record = ServiceToken(
        id=digest(token)[:12],
        name=name.strip(),
        roles=tuple(str(r) for r in roles),
        sha256=digest(token),
        created_at=now.isoformat(timespec="seconds"),
        expires_at=(now + timedelta(days=days)).isoformat(timespec="seconds") if days else None,
    )
    _write(path, [*read_tokens(path), record])
    return token, record


def revoke_token(path: Path, token_id: str) -> ServiceToken:
    """Remove one token by its id; the removed record."""
    tokens = read_tokens(path)
    kept = [t for t in tokens if t.id != token_id]
    if len(kept) == len(tokens):
        raise KeyError(f"No service token with id {token_id!r} in {path}.")
    _write(path, kept)
    return next(t for t in tokens if t.id == token_id)


class ServiceTokens:
    """The tokens a process accepts, read again whenever the file changes (checked at most once a second)."""

    def __init__(self, path: Path, *, clock: Any = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: tuple[float, int] | None = None
        self._checked = float("-inf")
        self._tokens: list[ServiceToken] = []
        self._error: str | None = None

    def verify(self, token: str) -> Principal | None:
        """The token's principal, or None when no stored token matches (or it expired).
        `TokenFileError` while the file has never been read."""
        if not token.startswith(PREFIX):
            return None
        tokens = self._current()
        if not tokens and self._error:  # never read: say why rather than "invalid token"
            raise TokenFileError(self._error)
        wanted = digest(token).encode()
        found = None
        for candidate in tokens:  # every digest compared: the time says nothing about which matched
            if hmac.compare_digest(wanted, candidate.sha256.encode()):
                found = candidate
        if found is None or found.expired(datetime.now(UTC)):
            return None
        return Principal(
            name=f"service:{found.name}",
            roles=frozenset(Role(r) for r in found.roles),
            via="service-token",
            subject=found.id,
        )

    @property
    def error(self) -> str | None:
        """Why the file could not be read last time (the previous tokens stay in force meanwhile)."""
        return self._error

    def _current(self) -> list[ServiceToken]:
        now = self._clock()
        if now - self._checked < _CHECK_EVERY_S:
            return self._tokens
        with self._lock:
            self._checked = now
            try:
                stat = self.path.stat()
                seen: tuple[float, int] | None = (stat.st_mtime, stat.st_size)
            except OSError:
                seen = None
            if seen != self._seen:
                try:
                    self._tokens = read_tokens(self.path)
                    self._error = None
                except TokenFileError as exc:
                    self._error = str(exc)
                self._seen = seen
        return self._tokens
