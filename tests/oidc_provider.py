"""Identity providers for tests, both real HTTP servers on free local ports.

`running_provider({"alice": ["rakuten-operators"]})`: a real OpenID Connect provider
(`oidc-provider-mock`) in its own process, with those users (their `groups` claim), stopped afterwards.
`Provider.id_token(sub, client_id)` signs a user in through the real authorization-code flow (authorize →
redirect with a code → token endpoint) and returns the ID token the provider signed: a JWT whose audience
is the client id. Any client id and secret work; a subject not listed signs in too, with no groups.
Where the provider cannot start, a test fails under `CI=true` and is skipped elsewhere.

`serving_keys(key)`: only a provider's discovery document and key set (JWKS), served from this process,
with RSA keys made here, for the tokens a real provider will not make (expired, foreign, rotated keys):
`key.sign(claims(server.url, audience))`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.conftest import free_port

CLIENT_ID: Final = "rakuten-console"
CLIENT_SECRET: Final = "any-secret-works"
REDIRECT_URI: Final = "http://localhost:8501/oauth2callback"
_START_TIMEOUT_S: Final = 60.0


# The console's sign-in settings (the provider's address aside: where one runs, its own)
CONSOLE_SIGN_IN: Final = {
    "RAKUTEN_OIDC_SERVER_METADATA_URL": "http://127.0.0.1:9/.well-known/openid-configuration",
    "RAKUTEN_OIDC_CLIENT_ID": CLIENT_ID,
    "RAKUTEN_OIDC_CLIENT_SECRET": "console-secret-0123456789",
    "RAKUTEN_OIDC_COOKIE_SECRET": "cookie-secret-0123456789-0123456789-0123",
}


def email_of(sub: str) -> str:
    """The email a listed user signs in with (what the platform shows as their name)."""
    return f"{sub}@example.org"


def signed_in(sub: str, *groups: str) -> dict[str, object]:
    """What `st.user` holds for `sub` signed in with `groups` (AppTest's `user`)."""
    return {"is_logged_in": True, "sub": sub, "email": email_of(sub), "groups": list(groups)}


@dataclass(frozen=True)
class Provider:
    url: str  # the issuer: what its tokens name in `iss`

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def tokens(
        self, sub: str, client_id: str = CLIENT_ID, scope: str = "openid email profile"
    ) -> dict[str, Any]:
        """The token endpoint's answer after `sub` signs in: `id_token`, `access_token`, `expires_in`…"""
        query = {
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": scope,
            "state": "test",
        }
        with httpx.Client(base_url=self.url, timeout=10) as client:
            form = client.get("/oauth2/authorize", params=query)  # what a browser is shown first
            assert form.status_code == 200, form.text
            signed_in = client.post("/oauth2/authorize", params=query, data={"sub": sub})
            assert signed_in.status_code == 302, signed_in.text
            back = urlparse(signed_in.headers["location"])
            assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT_URI
            code = parse_qs(back.query)["code"][0]
            answer = client.post(
                "/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "client_id": client_id,
                    "client_secret": CLIENT_SECRET,
                },
            )
        assert answer.status_code == 200, answer.text
        tokens: dict[str, Any] = answer.json()
        return tokens

    def id_token(self, sub: str, client_id: str = CLIENT_ID) -> str:
        """The ID token `sub` gets by signing in with `client_id` (a JWT signed by the provider)."""
        return str(self.tokens(sub, client_id)["id_token"])


@contextmanager
def running_provider(users: dict[str, list[str]], *, token_max_age_s: int = 3600) -> Iterator[Provider]:
    """The provider, with each user (subject → the groups in its tokens' `groups` claim), on a free
    local port; stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--token-max-age", str(token_max_age_s)]
    for sub, groups in users.items():
        claims = {"sub": sub, "groups": groups, "email": email_of(sub), "preferred_username": sub}
        command += ["--user-claims", json.dumps(claims)]
    provider = Provider(f"http://127.0.0.1:{port}")
    with tempfile.TemporaryDirectory(prefix="oidc-provider-") as folder:
        log = Path(folder) / "provider.log"
        with log.open("wb") as out:
            # NO_COLOR: its log is read back when it fails to start
            env = {**os.environ, "NO_COLOR": "1"}
            try:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
            except OSError as exc:
                _cannot_start(f"{command[0]} did not start: {exc}")
        try:
            _wait_until_up(provider, process, log)
            yield provider
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_until_up(provider: Provider, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _cannot_start(f"it exited with code {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(provider.metadata_url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"the OpenID Connect provider did not answer within {_START_TIMEOUT_S:.0f} s:\n{_tail(log)}")


def _cannot_start(reason: str) -> NoReturn:
    """CI installs the provider (requirements-dev): there it must start. Elsewhere the test is skipped."""
    message = f"OpenID Connect provider (oidc-provider-mock) unavailable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


# --- a bare key set ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    @property
    def jwk(self) -> dict[str, Any]:
        """The public half, as a provider publishes it."""
        public: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)  # type: ignore[assignment]
        return public | {"kid": self.kid, "use": "sig", "alg": "RS256"}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        """A token signed with this key, naming `kid` (this key's own by default)."""
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": kid or self.kid})


def new_key(kid: str) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def claims(issuer: str, audience: str, **changes: Any) -> dict[str, Any]:
    """A valid token's claims for ten minutes (bob, a reviewer by his group); a change to None drops
    the claim."""
    now = int(time.time())
    said = {
        "iss": issuer,
        "aud": audience,
        "sub": "u-1234",
        "email": "bob@example.org",
        "groups": ["rakuten-reviewers", "staff"],
        "iat": now,
        "exp": now + 600,
    }
    return {k: v for k, v in (said | changes).items() if v is not None}


@dataclass
class KeyServer:
    """A provider's published keys (change `published` to rotate them); counts key-set fetches."""

    url: str
    published: list[SigningKey] = field(default_factory=list)
    fetches: int = 0

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"


@contextmanager
def serving_keys(*published: SigningKey) -> Iterator[KeyServer]:
    """The discovery document and the key set of a provider whose issuer is the server's URL."""
    server = KeyServer(url="", published=list(published))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {"issuer": server.url, "jwks_uri": f"{server.url}/jwks"}
            elif self.path == "/jwks":
                server.fetches += 1
                body = {"keys": [key.jwk for key in server.published]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: a failing test says enough
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{http.server_address[1]}"
    thread = threading.Thread(target=http.serve_forever, name="key-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        http.shutdown()
        http.server_close()
        thread.join(timeout=5)
