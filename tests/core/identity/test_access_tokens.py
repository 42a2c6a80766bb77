"""The identity provider's access tokens, verified against keys served over real HTTP.

A local HTTP server plays the provider's discovery document and key set (JWKS), with RSA keys made
here; tokens are signed with PyJWT. Each way a token can be wrong is refused with its own reason code;
a rotated key set is picked up; a verified token is remembered until it expires. Last, the real thing:
an OpenID Connect provider process signs a user in and the verifier maps its groups to our roles.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Final

import pytest

from core.identity.access_tokens import AccessTokenVerifier
from core.identity.roles import Principal, Role, Unauthenticated
from tests.conftest import free_port
from tests.oidc_provider import (
    CLIENT_ID,
    KeyServer,
    SigningKey,
    email_of,
    new_key,
    running_provider,
    serving_keys,
)
from tests.oidc_provider import claims as token_claims

AUDIENCE: Final = "rakuten-api"
ROLE_MAP: Final = {"rakuten-reviewers": "reviewer", "rakuten-operators": "operator"}


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {name: new_key(name) for name in ("key-1", "key-2", "intruder")}


@pytest.fixture
def provider(keys: dict[str, SigningKey]) -> Iterator[KeyServer]:
    with serving_keys(keys["key-1"]) as server:
        yield server


def claims(provider: KeyServer, **changes: Any) -> dict[str, Any]:
    return token_claims(provider.url, AUDIENCE, **changes)


def verifier(provider: KeyServer, **options: Any) -> AccessTokenVerifier:
    return AccessTokenVerifier(
        audiences=[AUDIENCE],
        roles_claim="groups",
        role_map=ROLE_MAP,
        metadata_url=provider.metadata_url,
        timeout_s=2,
        **options,
    )


def test_a_valid_token_names_the_person_and_maps_the_groups_to_roles(
    provider: KeyServer, keys: dict[str, SigningKey]
) -> None:
    principal = verifier(provider).verify(keys["key-1"].sign(claims(provider)))
    assert principal == Principal(
        name="bob@example.org", roles=frozenset({Role.REVIEWER}), via="oidc", subject="u-1234"
    )


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("signed by another key under the published key's id", "bad_signature"),
        ("issued by another provider", "wrong_issuer"),
        ("meant for another service", "wrong_audience"),
        ("expired", "token_expired"),
        ("signed with a key the provider does not publish", "unknown_key"),
        ("without a subject", "missing_claim"),
        ("not a token at all", "invalid_token"),
    ],
)
def test_a_token_that_does_not_verify_is_refused_with_its_reason(
    provider: KeyServer, keys: dict[str, SigningKey], case: str, reason: str
) -> None:
    good, intruder, now = keys["key-1"], keys["intruder"], int(time.time())
    token = {
        "signed by another key under the published key's id": intruder.sign(claims(provider), kid=good.kid),
        "issued by another provider": good.sign(claims(provider, iss="https://idp.example.org")),
        "meant for another service": good.sign(claims(provider, aud="another-api")),
        # past the leeway allowed for clocks that differ
        "expired": good.sign(claims(provider, iat=now - 3600, exp=now - 120)),
        "signed with a key the provider does not publish": intruder.sign(claims(provider)),
        "without a subject": good.sign(claims(provider, sub=None)),
        "not a token at all": "aaaa.bbbb.cccc",
    }[case]
    with pytest.raises(Unauthenticated) as refused:
        verifier(provider).verify(token)
    assert refused.value.reason == reason, str(refused.value)
    assert str(refused.value)  # a message for people, beside the code


def test_an_unreachable_provider_is_said_so(keys: dict[str, SigningKey]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    token = keys["key-1"].sign({"sub": "x"})
    for unreachable in (
        AccessTokenVerifier(
            audiences=[AUDIENCE],
            roles_claim="groups",
            role_map=ROLE_MAP,
            metadata_url=f"{closed}/.well-known/openid-configuration",
            timeout_s=1,
        ),
        AccessTokenVerifier(
            audiences=[AUDIENCE],
            roles_claim="groups",
            role_map=ROLE_MAP,
            issuer=closed,
            jwks_uri=f"{closed}/jwks",
            timeout_s=1,
        ),
    ):
        with pytest.raises(Unauthenticated) as refused:
            unreachable.verify(token)
        assert refused.value.reason == "provider_unreachable", str(refused.value)


def test_a_rotated_key_is_picked_up_without_a_restart(
    provider: KeyServer, keys: dict[str, SigningKey]
) -> None:
    """The provider starts signing with a new key (and stops publishing the old one): the running
    verifier accepts the new key's tokens once its cached key set is read again."""
    old, new = keys["key-1"], keys["key-2"]
    checks = verifier(provider, keys_max_age_s=0.2)
    assert checks.verify(old.sign(claims(provider, sub="before"))).subject == "before"
    provider.published = [new]
    deadline = time.monotonic() + 5
    while True:
        try:
            assert checks.verify(new.sign(claims(provider, sub="after"))).subject == "after"
            break
        except Unauthenticated as exc:
            assert exc.reason == "unknown_key", str(exc)
            assert time.monotonic() < deadline, "the new key was not picked up"
            time.sleep(0.05)


def test_a_key_the_provider_retired_is_refused(provider: KeyServer, keys: dict[str, SigningKey]) -> None:
    old, new = keys["key-1"], keys["key-2"]
    checks = verifier(provider, keys_max_age_s=0.2)
    assert checks.verify(old.sign(claims(provider, sub="before"))).subject == "before"
    provider.published = [new]
    deadline = time.monotonic() + 5
    while True:  # a new token signed with the retired key: refused once the key set is read again
        try:
            checks.verify(old.sign(claims(provider, sub=f"after {time.monotonic()}")))
        except Unauthenticated as exc:
            assert exc.reason == "unknown_key", str(exc)
            break
        assert time.monotonic() < deadline, "the retired key is still trusted"
        time.sleep(0.05)


def test_a_verified_token_is_remembered_until_it_expires(
    provider: KeyServer, keys: dict[str, SigningKey]
) -> None:
    """Remembered: what the token said then is answered again, without verifying it (the role
    mapping changed meanwhile, and does not show); once expired by the verifier's clock, it is
    verified again (and the new mapping shows)."""
    now = [time.time()]
    checks = verifier(provider, clock=lambda: now[0])
    said = claims(provider)
    token = keys["key-1"].sign(said)
    first = checks.verify(token)
    assert first.roles == {Role.REVIEWER}
    checks.role_map = {}
    assert [checks.verify(token) for _ in range(50)] == [first] * 50
    now[0] = said["exp"] + 1
    assert checks.verify(token).roles == frozenset()


def test_a_real_provider_s_signed_token_gives_the_mapped_role() -> None:
    """oidc-provider-mock in its own process: alice signs in through the authorization-code flow; her
    ID token (audience: the client id) verifies against the provider's published keys, and her group
    gives the operator role. A user with no mapped group gets no role."""
    with running_provider({"alice": ["rakuten-operators"], "carol": ["marketing"]}) as idp:
        checks = AccessTokenVerifier(
            metadata_url=idp.metadata_url,
            audiences=[CLIENT_ID],
            roles_claim="groups",
            role_map={"rakuten-operators": "operator"},
        )
        alice = checks.verify(idp.id_token("alice"))
        assert alice == Principal(
            name=email_of("alice"), roles=frozenset({Role.OPERATOR}), via="oidc", subject="alice"
        )
        assert checks.verify(idp.id_token("carol")).roles == frozenset()
        with pytest.raises(Unauthenticated) as refused:
            checks.verify(idp.id_token("alice", client_id="another-client"))
        assert refused.value.reason == "wrong_audience"
