"""Coordinator tokens: signed, expiring, and naming a known role."""

from __future__ import annotations

import time

import pytest

from backbone.contracts import Agency
from backbone.tokens import InvalidToken, issue_token, verify_token

SECRET = b"s" * 32


def test_a_token_names_the_coordinator_teams_and_role() -> None:
    token = issue_token(SECRET, "Ada", ["housing-options", "discharge-team"], "health_practitioner")
    caller = verify_token(SECRET, token)
    assert (caller.name, caller.teams, caller.role) == (
        "Ada",
        ("housing-options", "discharge-team"),
        "health_practitioner",
    )
    assert caller.may_see_details_of(Agency.HEALTH)


def test_health_details_are_only_for_health_cleared_roles() -> None:
    caller = verify_token(SECRET, issue_token(SECRET, "Bo", ["children"], "social_worker"))
    assert not caller.may_see_details_of(Agency.HEALTH)
    assert caller.may_see_details_of(Agency.SOCIAL_CARE)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("garbage", "not <claims>.<signature>"),
        (issue_token(b"x" * 32, "Ada", ["t"], "coordinator"), "signature does not match"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(token: str, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        verify_token(SECRET, token)


def test_a_tampered_token_is_refused() -> None:
    _claims, signature = issue_token(SECRET, "Ada", ["t"], "auditor").split(".")
    forged = issue_token(SECRET, "Eve", ["t"], "safeguarding_lead").split(".")[0]
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(SECRET, f"{forged}.{signature}")


def test_an_expired_token_is_refused() -> None:
    token = issue_token(SECRET, "Ada", ["t"], "coordinator", ttl_s=60)
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(SECRET, token, now=time.time() + 120)


def test_unknown_roles_and_empty_teams_cannot_be_issued() -> None:
    with pytest.raises(InvalidToken, match="role 'admin'"):
        issue_token(SECRET, "Ada", ["t"], "admin")
    with pytest.raises(InvalidToken, match="at least one team"):
        issue_token(SECRET, "Ada", [], "coordinator")
