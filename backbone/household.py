"""Household relationships, and how each side of a pair reads one.

A social care event lists its subject's household, each member with what the member is to the
subject: `parent` says the member is the subject's parent. The same fact read from the member's
side is its reciprocal: the subject is the member's `child`. Partners and siblings are each
other's partner and sibling, a carer's person is `cared_for`, and `other` stays `other`.

A person's household is read from their own records first: whom those list, as they list them.
A member only another person's records name (a parent whose own case lists no child) is read
as the reciprocal of what those records say. So a relationship the two sides record differently
reads as each side's own record says, whatever order the records arrive in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Relationship = Literal["parent", "child", "partner", "sibling", "carer", "cared_for", "other"]
_RECIPROCAL: dict[str, Relationship] = {
    "parent": "child",
    "child": "parent",
    "partner": "partner",
    "sibling": "sibling",
    "carer": "cared_for",
    "cared_for": "carer",
    "other": "other",
}


def reciprocal(relationship: str) -> Relationship:
    """What the subject is to a member listed as `relationship` (`other` for a word the
    vocabulary does not have)."""
    return _RECIPROCAL.get(relationship, "other")


def relationship_to(own: str | None, listed_as: str | None) -> str | None:
    """What a member is to a person: as the person's own records list the member (`own`), else
    the reciprocal of what the member's records list the person as (`listed_as`); None if
    neither names the other."""
    if own is not None:
        return own
    return None if listed_as is None else reciprocal(listed_as)


def household_as_read(own: Mapping[str, str], listed_by: Mapping[str, str]) -> dict[str, str]:
    """A person's household, member person id -> relationship, from `own` (whom the person's
    records list) and `listed_by` (member -> what the member's records list the person as)."""
    return {**{member: reciprocal(listed_as) for member, listed_as in listed_by.items()}, **own}
