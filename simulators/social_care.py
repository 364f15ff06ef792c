"""Plays the social care case management system: signs and POSTs webhook deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import httpx


@dataclass(frozen=True)
class CasePerson:
    """A person as the case management system records them."""

    case_person_id: str
    family_name: str
    given_name: str
    birth_date: date
    national_id: str | None = None
    postcode: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "case_person_id": self.case_person_id,
            "national_id": self.national_id,
            "family_name": self.family_name,
            "given_name": self.given_name,
            "birth_date": self.birth_date.isoformat(),
            "postcode": self.postcode,
        }


@dataclass(frozen=True)
class Relative:
    person: CasePerson
    relationship: str  # what the relative is to the case person: parent, child, partner, ...


@dataclass(frozen=True)
class CaseEvent:
    """One change in a case, as the system would POST it."""

    event_type: str
    occurred_at: datetime
    case_id: str
    person: CasePerson
    household: tuple[Relative, ...] = ()
    details: dict[str, str] = field(default_factory=dict)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def body(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "occurred_at": self.occurred_at.isoformat(),
            "case_id": self.case_id,
            "person": self.person.as_json(),
            "household": [
                {**member.person.as_json(), "relationship": member.relationship}
                for member in self.household
            ],
            "details": self.details,
        }


class CaseManagementSystem:
    """Delivers webhooks to the backbone the way the real system does."""

    def __init__(self, base_url: str, secret: bytes, timeout_s: float = 10.0) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout_s)
        self._secret = secret

    def signature(self, raw: bytes) -> str:
        return "sha256=" + hmac.new(self._secret, raw, hashlib.sha256).hexdigest()

    def deliver(
        self,
        payload: CaseEvent | dict[str, Any] | bytes,
        *,
        idempotency_key: str | None = None,
        signature: str | None = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        """POST one delivery; by default signed correctly with a fresh idempotency key."""
        if isinstance(payload, CaseEvent):
            payload = payload.body()
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "Content-Type": content_type,
            "X-Signature": signature if signature is not None else self.signature(raw),
            "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
        }
        return self._client.post("/webhooks/social-care", content=raw, headers=headers)

    def close(self) -> None:
        self._client.close()
