"""The identity topics' messages as Avro records, and back to the dicts the features use.

Each event in a frame on `identity-decisions` is a `backbone.identity.IdentityDecision`, each on
`identity-changes` a `backbone.identity.IdentityChange` (a link, merge, split, erasure, or
timeline contents moving to another person: `absorb`). The resolver, the timeline and the
alert views work with dicts; these functions turn a dict into its record and the record back
into the same dict: the keys it had (no null stand-ins for absent ones) and, for links, in the
same order, since `GET /persons/{id}/links` shows them as they are. Free-form parts (a link's
`evidence`, a timeline entry's `details`) travel as JSON text.
"""

from __future__ import annotations

from typing import Any

import orjson

from backbone.codec import AvroCodec
from backbone.contracts import IDENTITY_CHANGE_SCHEMA, IDENTITY_DECISION_SCHEMA
from backbone.errors import BadInput

Link = dict[str, Any]
# A link's fields beside `keys`; basis, outcome and reason every link has.
_LINK_FIELDS = (
    "record_id",
    "agency",
    "basis",
    "score",
    "agreeing_fields",
    "review_person_id",
    "outcome",
    "coordinator",
    "reason",
    "split_from",
    "evidence",
)
_LINK_KNOWN = frozenset(_LINK_FIELDS)
# An erasure's confirmation carries these beside the decision (`command_id` set on it only).
_CONFIRMATION = ("command_id", "erased_person_id", "records")
# A change's fields beside person_id and change, in the order the senders' dicts have them.
_CHANGE_FIELDS = ("records", "into", "reason", "listed", "link", "timeline")


# Decisions ----------------------------------------------------------------------------------
def encode_decision(codec: AvroCodec, decision: dict[str, Any]) -> bytes:
    """`{"record_id", "person_id", "fingerprint"}` (+ an erasure confirmation's fields)."""
    return codec.encode(IDENTITY_DECISION_SCHEMA, decision)


def decode_decision(codec: AvroCodec, data: bytes) -> dict[str, Any]:
    """The decision dict: record_id, person_id, fingerprint, and on an erasure's confirmation
    command_id, erased_person_id, records; BadInput if not an IdentityDecision."""
    record = codec.decode_as(IDENTITY_DECISION_SCHEMA, data)
    decision = {name: record[name] for name in ("record_id", "person_id", "fingerprint")}
    if record["command_id"] is not None:
        decision.update((name, record[name]) for name in _CONFIRMATION)
    return decision


# Changes ------------------------------------------------------------------------------------
def encode_change(codec: AvroCodec, change: dict[str, Any]) -> bytes:
    """`{"person_id", "change", ...}` as an IdentityChange; BadInput if it does not fit."""
    record = {**change}
    if change.get("link") is not None:
        record["link"] = link_record(change["link"])
    if change.get("timeline") is not None:
        record["timeline"] = contents_record(change["timeline"])
    return codec.encode(IDENTITY_CHANGE_SCHEMA, record)


def decode_change(codec: AvroCodec, data: bytes) -> dict[str, Any]:
    """The change dict: person_id, change, and the fields of its kind that were set; BadInput
    if not an IdentityChange."""
    record = codec.decode_as(IDENTITY_CHANGE_SCHEMA, data)
    change: dict[str, Any] = {"person_id": record["person_id"], "change": record["change"]}
    for name in _CHANGE_FIELDS:
        if record[name] is not None:
            change[name] = record[name]
    if "link" in change:
        change["link"] = link_of_record(change["link"])
    if "timeline" in change:
        change["timeline"] = contents_of_record(change["timeline"])
    return change


# Links --------------------------------------------------------------------------------------
def link_record(link: Link) -> dict[str, Any]:
    """A link dict as a `backbone.identity.Link` record: its keys named in order."""
    unknown = link.keys() - _LINK_KNOWN
    if unknown:
        raise BadInput(f"a link has no field {sorted(unknown)[0]}", field="link")
    record: dict[str, Any] = {"keys": list(link)}
    record.update((name, link.get(name)) for name in _LINK_FIELDS)
    if "evidence" in link:
        record["evidence"] = orjson.dumps(link["evidence"]).decode()
    return record


def link_of_record(record: dict[str, Any]) -> Link:
    """The link dict a `link_record` was made from: the keys it had, in their order."""
    link: Link = {}
    for name in record["keys"]:
        if name not in _LINK_KNOWN:
            raise BadInput(f"a link has no field {name}", field="link.keys")
        link[name] = record[name]
    if "evidence" in link:
        link["evidence"] = _json(link["evidence"], "link.evidence")
    return link


# Timeline contents (absorb) -----------------------------------------------------------------
def contents_record(contents: dict[str, Any]) -> dict[str, Any]:
    """Timeline contents (events, household, links, listed_by; each optional) as a
    TimelineContents."""
    return {
        "events": [entry_record(entry) for entry in contents.get("events", [])],
        "household": contents.get("household", {}),
        "links": {key: link_record(link) for key, link in contents.get("links", {}).items()},
        "listed_by": contents.get("listed_by", {}),
    }


def contents_of_record(record: dict[str, Any]) -> dict[str, Any]:
    """The contents dict, with only the parts that hold something, in the order the timeline
    sends them (it never sends an empty part; the events last)."""
    contents: dict[str, Any] = {}
    if record["household"]:
        contents["household"] = record["household"]
    if record["listed_by"]:
        contents["listed_by"] = record["listed_by"]
    if record["links"]:
        contents["links"] = {key: link_of_record(link) for key, link in record["links"].items()}
    if record["events"]:
        contents["events"] = [entry_of_record(entry) for entry in record["events"]]
    return contents


def entry_record(entry: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry (streams/timeline/entries.py) as a TimelineEntry."""
    return {**entry, "details": orjson.dumps(entry["details"]).decode()}


def entry_of_record(record: dict[str, Any]) -> dict[str, Any]:
    """The timeline entry dict; `record_id` only if it had one (older entries do not),
    `initial_load` only when true (as timeline entries carry it)."""
    entry = {**record, "details": _json(record["details"], "details")}
    if entry["record_id"] is None:
        del entry["record_id"]
    if not entry["initial_load"]:
        del entry["initial_load"]
    return entry


def _json(text: str, field: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"not JSON: {exc}", field=field) from None
