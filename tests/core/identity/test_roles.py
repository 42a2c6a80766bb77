"""The role table every entry point asks, and the roles read from an identity provider's claims: a
viewer predicts and views only, a reviewer reviews, an operator operates but does not review, an admin
does everything; unknown names grant nothing."""

from __future__ import annotations

import pytest

from core.identity.roles import (
    ALLOWED,
    NEEDS,
    Action,
    Forbidden,
    Principal,
    Role,
    check,
    display_name,
    local_user,
    may,
    roles_from_claims,
    schedule,
)

REVIEWING = {Action.REVIEW, Action.EXPORT_CORRECTIONS, Action.IMPORT_CORRECTIONS, Action.SCAN_LABELS}
OPERATING = {
    Action.RETRAIN,
    Action.CANCEL_RUN,
    Action.PROMOTE,
    Action.ROLLBACK,
    Action.RELOAD,
    Action.REINGEST,
    Action.DRIFT_REPORT,
}
MAPPING = {"rakuten-viewers": "viewer", "rakuten-reviewers": "reviewer", "rakuten-operators": "operator"}


def who(*roles: Role) -> Principal:
    return Principal(name="alice", roles=frozenset(roles), via="oidc")


def allowed(*roles: Role) -> set[Action]:
    return {action for action in Action if may(who(*roles), action)}


def test_a_viewer_predicts_and_views_only() -> None:
    assert allowed(Role.VIEWER) == {Action.PREDICT, Action.VIEW}


def test_a_reviewer_reviews_but_does_not_operate() -> None:
    assert allowed(Role.REVIEWER) == {Action.PREDICT, Action.VIEW} | REVIEWING


def test_an_operator_operates_but_does_not_review_or_manage_tokens() -> None:
    assert allowed(Role.OPERATOR) == {Action.PREDICT, Action.VIEW} | OPERATING
    assert not may(who(Role.OPERATOR), Action.REVIEW)
    assert not may(who(Role.OPERATOR), Action.MANAGE_TOKENS)


def test_an_admin_does_everything_and_roles_add_up() -> None:
    assert allowed(Role.ADMIN) == set(Action)
    assert allowed(Role.REVIEWER, Role.OPERATOR) == allowed(Role.REVIEWER) | allowed(Role.OPERATOR)
    assert allowed() == set()  # no role, nothing: not even predict


def test_every_action_names_the_least_role_that_allows_it() -> None:
    assert set(ALLOWED) == set(Role)
    for action, role in NEEDS.items():
        assert action in ALLOWED[role]
    assert NEEDS[Action.PROMOTE] is Role.OPERATOR and NEEDS[Action.REVIEW] is Role.REVIEWER
    assert NEEDS[Action.MANAGE_TOKENS] is Role.ADMIN and NEEDS[Action.PREDICT] is Role.VIEWER


def test_check_raises_forbidden_saying_what_is_missing() -> None:
    check(who(Role.OPERATOR), Action.PROMOTE)
    with pytest.raises(Forbidden) as refused:
        check(who(Role.VIEWER), Action.PROMOTE)
    message = str(refused.value)
    assert "alice (viewer) may not promote a model" in message and "operator role" in message
    assert refused.value.action is Action.PROMOTE
    with pytest.raises(Forbidden, match=r"alice \(no role\) may not"):
        check(who(), Action.VIEW)


def test_the_local_user_holds_every_role_and_a_schedule_operates() -> None:
    me = local_user()
    assert me.roles == frozenset(Role) and me.via == "local" and me.name.endswith("@local")
    robot = schedule("monitor-and-retrain")
    assert robot.name == "schedule:monitor-and-retrain" and robot.via == "schedule"
    assert may(robot, Action.RETRAIN) and not may(robot, Action.REVIEW)
    assert who(Role.OPERATOR, Role.ADMIN).role_names == "admin,operator" and who().role_names == "-"
    assert who(Role.VIEWER).headline == "alice (viewer)"


@pytest.mark.parametrize(
    ("claims", "claim", "expected"),
    [
        ({"groups": ["rakuten-operators", "rakuten-viewers"]}, "groups", {Role.OPERATOR, Role.VIEWER}),
        ({"groups": "rakuten-reviewers rakuten-operators"}, "groups", {Role.REVIEWER, Role.OPERATOR}),
        ({"groups": "rakuten-reviewers,rakuten-viewers"}, "groups", {Role.REVIEWER, Role.VIEWER}),
        ({"realm_access": {"roles": ["rakuten-operators"]}}, "realm_access.roles", {Role.OPERATOR}),
        ({"groups": ["/rakuten-reviewers", "/other/group"]}, "groups", {Role.REVIEWER}),  # Keycloak paths
        ({"groups": ("rakuten-viewers",)}, "groups", {Role.VIEWER}),
    ],
)
def test_roles_from_claims(claims: dict[str, object], claim: str, expected: set[Role]) -> None:
    assert roles_from_claims(claims, claim, MAPPING) == expected


@pytest.mark.parametrize(
    "claims",
    [
        {},  # no such claim
        {"groups": None},
        {"groups": ["admins", "rakuten-admins"]},  # unmapped names grant nothing
        {"groups": 42},  # neither a list nor a string
        {"realm_access": "rakuten-operators"},  # the dotted path does not reach into a string
        {"groups": {"rakuten-operators": True}},
    ],
)
def test_unknown_or_malformed_claims_grant_nothing(claims: dict[str, object]) -> None:
    claim = "realm_access.roles" if "realm_access" in claims else "groups"
    assert roles_from_claims(claims, claim, MAPPING) == frozenset()


def test_a_mapping_to_an_unknown_role_grants_nothing() -> None:
    assert roles_from_claims({"groups": ["boss"]}, "groups", {"boss": "superuser"}) == frozenset()


def test_display_name_prefers_email_then_username_then_name() -> None:
    assert display_name({"email": "a@x.org", "preferred_username": "a"}, "sub-1") == "a@x.org"
    assert display_name({"email": " ", "preferred_username": "ana"}, "sub-1") == "ana"
    assert display_name({"name": "Ana B"}, "sub-1") == "Ana B"
    assert display_name({}, "sub-1") == "sub-1"
