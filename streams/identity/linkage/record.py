"""The part of an event's subject that linkage compares, in comparable form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from streams.identity.linkage.normalise import family_name_key, given_name_key, postcode_key

_KNOWN_SEXES = frozenset(("F", "M"))  # O, U, A, N say nothing about whether two records agree


@dataclass(frozen=True, slots=True)
class LinkageRecord:
    """One agency record's identifying details, normalised for comparison."""

    record_id: str
    national_id: str | None
    given_name: str | None
    family_name: str | None
    birth_date: date | None
    sex: str | None
    postcode: str | None

    @classmethod
    def from_subject(cls, subject: Mapping[str, Any]) -> LinkageRecord:
        """From an event's subject (the `Subject` model or its decoded Avro dict)."""
        sex = subject.get("sex")
        return cls(
            record_id=str(subject["record_id"]),
            national_id=subject.get("national_id") or None,
            given_name=given_name_key(subject.get("given_name")),
            family_name=family_name_key(subject.get("family_name")),
            birth_date=_as_date(subject.get("birth_date")),
            sex=sex if sex in _KNOWN_SEXES else None,
            postcode=postcode_key(subject.get("postcode")),
        )

    def to_state(self) -> dict[str, Any]:
        """A JSON-able dict for a state table (a Faust table value)."""
        return {
            "record_id": self.record_id,
            "national_id": self.national_id,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "sex": self.sex,
            "postcode": self.postcode,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LinkageRecord:
        """The inverse of `to_state`."""
        return cls(
            record_id=state["record_id"],
            national_id=state["national_id"],
            given_name=state["given_name"],
            family_name=state["family_name"],
            birth_date=_as_date(state["birth_date"]),
            sex=state["sex"],
            postcode=state["postcode"],
        )


def _as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
