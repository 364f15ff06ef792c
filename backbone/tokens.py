"""Coordinator tokens: who is asking, for which teams, in which role; signed with HMAC.

A token is `<base64url JSON claims>.<base64url HMAC-SHA256 of the claims>`; the deployment's
token secret signs and verifies it, so any worker can check a token without a lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from backbone.contracts import Agency
from backbone.errors import BackboneError

# Which agencies' event details each role may see on a timeline. Health details are
# special-category data: only roles cleared for health see them.
ROLE_DETAILS: dict[str, frozenset[Agency]] = {
    "coordinator": frozenset({Agency.JOBCENTRE, Agency.HOUSING, Agency.SOCIAL_CARE}),
    "social_worker": frozenset({Agency.JOBCENTRE, Agency.HOUSING, Agency.SOCIAL_CARE}),
    "health_practitioner": frozenset(Agency),
    "safeguarding_lead": frozenset(Agency),
    "housing_officer": frozenset({Agency.HOUSING}),
    "work_coach": frozenset({Agency.JOBCENTRE}),
    "auditor": frozenset(),
}


class InvalidToken(BackboneError):  # noqa: N818 - reads as the verdict it is
    """A token that is malformed, wrongly signed, expired or names an unknown role."""


@dataclass(frozen=True)
class Coordinator:
    """The caller a verified token names."""

    name: str
    teams: tuple[str, ...]
    role: str
    expires_at: int

    def may_see_details_of(self, agency: Agency) -> bool:
        return agency in ROLE_DETAILS.get(self.role, frozenset())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, claims: str) -> str:
    return _b64(hmac.new(secret, claims.encode(), hashlib.sha256).digest())


def issue_token(
    secret: bytes, name: str, teams: list[str], role: str, ttl_s: int = 8 * 3600
) -> str:
    """A signed token for a coordinator, valid for `ttl_s` seconds."""
    if role not in ROLE_DETAILS:
        raise InvalidToken(f"role {role!r} is not one of {', '.join(sorted(ROLE_DETAILS))}")
    if not teams:
        raise InvalidToken("a token needs at least one team")
    claims = {"sub": name, "teams": teams, "role": role, "exp": int(time.time()) + ttl_s}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{payload}.{_signature(secret, payload)}"


def verify_token(secret: bytes, token: str, now: float | None = None) -> Coordinator:
    """The coordinator a token names; InvalidToken says why it is not accepted."""
    payload, _, signature = token.partition(".")
    if not payload or not signature:
        raise InvalidToken("token is not <claims>.<signature>")
    if not hmac.compare_digest(signature, _signature(secret, payload)):
        raise InvalidToken("token signature does not match")
    try:
        claims = json.loads(_unb64(payload))
        coordinator = Coordinator(
            name=str(claims["sub"]),
            teams=tuple(str(team) for team in claims["teams"]),
            role=str(claims["role"]),
            expires_at=int(claims["exp"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidToken(f"token claims are malformed: {exc}") from exc
    if coordinator.expires_at < (time.time() if now is None else now):
        raise InvalidToken("token has expired")
    if coordinator.role not in ROLE_DETAILS:
        raise InvalidToken(f"token role {coordinator.role!r} is unknown")
    return coordinator
