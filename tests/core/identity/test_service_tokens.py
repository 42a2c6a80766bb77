"""Named service tokens: made once (shown once), stored hashed in a private file, verified, revoked,
expired, and picked up by a running process when the file changes."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.identity.roles import Principal, Role
from core.identity.service_tokens import (
    PREFIX,
    ServiceToken,
    ServiceTokens,
    TokenFileError,
    create_token,
    digest,
    read_tokens,
    revoke_token,
)


class Clock:
    """The time `ServiceTokens` reads to decide when to look at the file again, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "service_tokens.json"


def test_a_token_is_made_verified_and_revoked(path: Path) -> None:
    token, record = create_token(path, " console ", [Role.OPERATOR, Role.REVIEWER])
    assert token.startswith(PREFIX) and len(token) > 40
    assert record.name == "console" and record.roles == ("operator", "reviewer")
    assert record.sha256 == digest(token) and record.id == digest(token)[:12]
    assert token not in path.read_text()  # only its digest is kept
    assert ServiceTokens(path).verify(token) == Principal(
        name="service:console",
        roles=frozenset({Role.OPERATOR, Role.REVIEWER}),
        via="service-token",
        subject=record.id,
    )
    for wrong in ("", token[:-1] + ("A" if token[-1] != "A" else "B"), token.removeprefix(PREFIX)):
        assert ServiceTokens(path).verify(wrong) is None
    assert revoke_token(path, record.id) == record
    assert ServiceTokens(path).verify(token) is None
    with pytest.raises(KeyError, match=record.id):
        revoke_token(path, record.id)


def test_a_token_needs_a_name_and_a_role(path: Path) -> None:
    for name, roles in (("  ", [Role.VIEWER]), ("ci", [])):
        with pytest.raises(ValueError, match="name and at least one role"):
            create_token(path, name, roles)
    with pytest.raises(ValueError):
        create_token(path, "ci", ["superuser"])  # type: ignore[list-item]
    assert not path.exists()


def test_several_tokens_are_valid_at_once(path: Path) -> None:
    made = {
        name: create_token(path, name, [role]) for name, role in (("ci", Role.OPERATOR), ("bot", Role.VIEWER))
    }
    made["ci-next"] = create_token(path, "ci", [Role.OPERATOR])  # the same name: a rotation under way
    tokens = ServiceTokens(path)
    for name, (token, record) in made.items():
        principal = tokens.verify(token)
        assert principal is not None and principal.subject == record.id, name
    assert {t.id for t in read_tokens(path)} == {record.id for _, record in made.values()}
    revoke_token(path, made["ci"][1].id)
    tokens = ServiceTokens(path)
    assert tokens.verify(made["ci"][0]) is None
    assert tokens.verify(made["ci-next"][0]) is not None and tokens.verify(made["bot"][0]) is not None


def test_the_file_is_private(path: Path) -> None:
    create_token(path, "ci", [Role.OPERATOR])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    create_token(path, "bot", [Role.VIEWER])  # rewritten: still private
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_an_expired_token_is_refused(path: Path) -> None:
    token, record = create_token(path, "temp", [Role.VIEWER], days=7)
    assert record.expires_at is not None
    expires = datetime.fromisoformat(record.expires_at)
    assert timedelta(days=7) - timedelta(minutes=1) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert not record.expired(expires - timedelta(seconds=1)) and record.expired(expires)
    assert ServiceTokens(path).verify(token) is not None
    _rewrite(path, expires_at=(datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds"))
    assert ServiceTokens(path).verify(token) is None
    forever = ServiceToken(id="x", name="x", roles=("viewer",), sha256="x", created_at="2026-01-01")
    assert not forever.expired(datetime.now(UTC) + timedelta(days=36_500))


def test_unknown_roles_in_the_file_are_refused_with_what_to_fix(path: Path) -> None:
    token, record = create_token(path, "ci", [Role.OPERATOR])
    tokens = ServiceTokens(path)
    assert tokens.verify(token) is not None and tokens.error is None
    _rewrite(path, roles=["operator", "superuser"])
    with pytest.raises(TokenFileError) as refused:
        read_tokens(path)
    message = str(refused.value)
    assert str(path) in message and record.id in message and "ci" in message and "superuser" in message
    # and a process that never read it says why rather than "invalid token"
    fresh = ServiceTokens(path)
    with pytest.raises(TokenFileError):
        fresh.verify(token)
    assert fresh.error == message


def test_an_unreadable_file_is_said_so(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(TokenFileError, match="Cannot read the service tokens"):
        read_tokens(path)
    assert read_tokens(path.with_name("absent.json")) == []


def test_a_running_process_picks_up_a_rotation_without_a_new_object(path: Path) -> None:
    """Rotating: make the new token, move the clients, revoke the old. The same `ServiceTokens` (one
    per API process) sees the file change the next time it looks (at most once a second)."""
    old, old_record = create_token(path, "console", [Role.OPERATOR])
    clock = Clock()
    tokens = ServiceTokens(path, clock=clock)
    assert tokens.verify(old) is not None
    new, _ = create_token(path, "console", [Role.OPERATOR])
    revoke_token(path, old_record.id)
    clock.now += 0.5  # within the second: the file is not looked at again yet
    assert tokens.verify(old) is not None and tokens.verify(new) is None
    clock.now += 0.5
    assert tokens.verify(old) is None
    principal = tokens.verify(new)
    assert principal is not None and principal.name == "service:console"
    # a broken file later: the tokens in force stay so, and the error says why
    _rewrite(path, roles=["root"])
    clock.now += 1
    assert tokens.verify(new) is not None and "root" in str(tokens.error)


def _rewrite(path: Path, **changes: object) -> None:
    """Change every token's record in the file, as a hand edit would."""
    data = json.loads(path.read_text())
    data["tokens"] = [t | changes for t in data["tokens"]]
    path.write_text(json.dumps(data, indent=2))
