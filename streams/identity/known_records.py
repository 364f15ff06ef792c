"""Which events can skip the resolver: their records are linked and unchanged since.

The resolver is one partition and must see every candidate, so it sees only what it must: new
records, records whose matching attributes changed, HL7 merges and the commands on its input.
Every other event's person is read from `record-links` (record id -> person id and the
fingerprint of the attributes it was resolved with), which is co-partitioned with the agency
topics and so scales out with them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streams.identity.linkage.record import LinkageRecord


def fingerprint(subject: Mapping[str, Any]) -> str:
    """A short hash of what the resolver compares: the subject's normalised attributes."""
    return fingerprint_of_details(LinkageRecord.from_subject(subject).to_state())


def fingerprint_of_details(details: Mapping[str, Any]) -> str:
    """The fingerprint of a record's stored details (`LinkageRecord.to_state`)."""
    return hashlib.blake2b(
        orjson.dumps(details, option=orjson.OPT_SORT_KEYS), digest_size=8
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class KnownPerson:
    """An event's person and household, as `record-links` knows them."""

    person_id: str
    household: dict[str, str]  # member person id -> relationship


def known_person(record: Mapping[str, Any], links: Mapping[str, Any]) -> KnownPerson | None:
    """The person of an event whose records are all linked with these very attributes; None
    when the resolver must see it (a new or changed record, or an HL7 A40 merge)."""
    if record.get("merged_record_id"):
        return None
    person = _linked_person(record["envelope"]["subject"], links)
    if person is None:
        return None
    household: dict[str, str] = {}
    for member in record.get("household") or []:
        member_person = _linked_person(member["subject"], links)
        if member_person is None:
            return None
        household[member_person] = member["relationship"]
    return KnownPerson(person, household)


def _linked_person(subject: Mapping[str, Any], links: Mapping[str, Any]) -> str | None:
    link = links.get(subject["record_id"])
    if not isinstance(link, dict) or link.get("fingerprint") != fingerprint(subject):
        return None
    person: str = link["person_id"]
    return person
