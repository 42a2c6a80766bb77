"""The identity provider's access tokens (JWT), verified against its published keys (JWKS).

Signature, issuer, audience and expiry are all required. The provider's discovery document gives the
keys' address and its issuer once; the key set is cached, and fetched again when it ages out or when a
token names a key id not in it (the provider rotated its keys; at most one such fetch per few seconds,
so a stream of forged key ids cannot hammer the provider). A key the provider stopped publishing stops
verifying once the set is fetched again. A token naming no key id is accepted only when the provider
publishes exactly one key. Every outbound call has a
timeout. A token that verified is remembered until it expires (the API's per-request cost is a digest
and a dictionary lookup), at most `_REMEMBERED` of them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import httpx

from core.identity.roles import Principal, Unauthenticated, display_name, roles_from_claims

if TYPE_CHECKING:
    import jwt

# Lazy imports: PyJWT (and `cryptography` behind it) load with the first token.

ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_REMEMBERED: Final = 4096
_LEEWAY_S: Final = 30  # clocks of the provider and this machine may differ a little
_REFETCH_COOLDOWN_S: Final = 5.0


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("rkt_")


class AccessTokenVerifier:
    """Verifies one provider's tokens. Either `jwks_uri` + `issuer`, or `metadata_url` (discovery)."""

    def __init__(
        self,
        *,
        audiences: Sequence[str],
        roles_claim: str,
        role_map: Mapping[str, str],
        metadata_url: str | None = None,
        issuer: str | None = None,
        jwks_uri: str | None = None,
        timeout_s: float = 5.0,
        keys_max_age_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not audiences:
            raise ValueError("An access-token verifier needs at least one accepted audience.")
        if not (metadata_url or (issuer and jwks_uri)):
            raise ValueError("Give the provider's discovery URL, or its issuer and JWKS URL.")
        self.audiences = list(audiences)
        self.roles_claim = roles_claim
        self.role_map = dict(role_map)
        self.metadata_url = metadata_url
        self.issuer = issuer
        self.jwks_uri = jwks_uri
        self.timeout_s = timeout_s
        self.keys_max_age_s = keys_max_age_s
        self._clock = clock
        self._keys: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        self._remembered: dict[str, tuple[Principal, float]] = {}

    def verify(self, token: str) -> Principal:
        """The token's principal; `Unauthenticated` (with a reason code) when it does not verify."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        known = self._remembered.get(key)
        if known is not None and known[1] > now:
            return known[0]
        claims = self._claims(token)
        subject = str(claims.get("sub", ""))
        principal = Principal(
            name=display_name(claims, subject),
            roles=roles_from_claims(claims, self.roles_claim, self.role_map),
            via="oidc",
            subject=subject,
        )
        if len(self._remembered) >= _REMEMBERED:
            self._remembered.clear()  # rare: a burst of distinct tokens; verifying again is cheap enough
        self._remembered[key] = (principal, float(claims["exp"]))
        return principal

    def _claims(self, token: str) -> dict[str, Any]:
        import jwt

        keys, issuer = self._provider()
        try:
            signing_key = _signing_key(keys, token)
            claims: dict[str, Any] = jwt.decode(
                token,
                signing_key.key,
                algorithms=list(ALGORITHMS),
                audience=self.audiences,
                issuer=issuer,
                leeway=_LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("The access token has expired: sign in again.", "token_expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated(
                f"The access token is not meant for this service (audience must be one of {self.audiences}).",
                "wrong_audience",
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated(f"The access token was not issued by {issuer}.", "wrong_issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("The access token's signature does not verify.", "bad_signature") from exc
        except jwt.PyJWKClientConnectionError as exc:
            raise Unauthenticated(
                f"The identity provider's keys cannot be fetched ({exc}): try again shortly.",
                "provider_unreachable",
            ) from exc
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated(
                f"The access token is signed with a key the identity provider does not publish ({exc}).",
                "unknown_key",
            ) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"The access token lacks a claim: {exc}.", "missing_claim") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"The access token is not valid: {exc}.", "invalid_token") from exc
        return claims

    def _provider(self) -> tuple[jwt.PyJWKClient, str]:
        """The key client and the expected issuer, from discovery the first time."""
        import jwt

        with self._lock:
            if self._keys is None or self.issuer is None:
                issuer, jwks_uri = self.issuer, self.jwks_uri
                if not (issuer and jwks_uri):
                    metadata = self._discover()
                    issuer = issuer or str(metadata["issuer"])
                    jwks_uri = jwks_uri or str(metadata["jwks_uri"])
                self.issuer, self.jwks_uri = issuer, jwks_uri
                self._keys = jwt.PyJWKClient(
                    jwks_uri,
                    cache_keys=False,  # the set's own cache ages out: retired keys go with it
                    lifespan=self.keys_max_age_s,
                    timeout=self.timeout_s,
                    cooldown_duration=_REFETCH_COOLDOWN_S,
                )
            return self._keys, self.issuer

    def _discover(self) -> dict[str, Any]:
        assert self.metadata_url is not None
        try:
            response = httpx.get(self.metadata_url, timeout=self.timeout_s)
            response.raise_for_status()
            metadata: dict[str, Any] = response.json()
            if "issuer" not in metadata or "jwks_uri" not in metadata:
                raise ValueError("no issuer or jwks_uri in it")
        except (httpx.HTTPError, ValueError) as exc:
            raise Unauthenticated(
                f"The identity provider's discovery document at {self.metadata_url} cannot be read ({exc}).",
                "provider_unreachable",
            ) from exc
        return metadata


def _signing_key(keys: jwt.PyJWKClient, token: str) -> jwt.PyJWK:
    """The published key the token names; with no key id, the provider's only key."""
    import jwt

    if jwt.get_unverified_header(token).get("kid"):
        return keys.get_signing_key_from_jwt(token)
    published = keys.get_signing_keys()
    if len(published) != 1:
        raise jwt.PyJWKClientError("the token names no key id, and the provider publishes several keys")
    return published[0]
