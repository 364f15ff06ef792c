"""Alert view updates as Avro records, and back to the dicts the alert tracker uses.

Each event in a frame on `alert-updates` (keyed by the person whose view it updates) is a
`backbone.alerts.AlertViewUpdate`: a household member's entries (`member`), a merged person's
view (`absorb`), a resolved alert (`closed`) or a deadline check (`check`), as
streams/alerting/tracking.py makes them. An update decodes to the dict it was encoded from: the
fields of its kind, `watermark` only if it had one. An entry's free-form `details` travel as
JSON text.
"""

from __future__ import annotations

from typing import Any

import orjson

from backbone.codec import AvroCodec
from backbone.contracts import ALERT_VIEW_UPDATE_SCHEMA
from backbone.errors import BadInput

Update = dict[str, Any]
# An update's fields beside `kind`, in the order its dict has them; a kind sets only its own.
_FIELDS = ("member_id", "from", "household", "events", "reply", "members", "alert_id", "watermark")


def encode_update(codec: AvroCodec, update: Update) -> bytes:
    """An update dict (`kind` plus that kind's fields) as an AlertViewUpdate; BadInput if it
    does not fit."""
    record = {**update}
    if "events" in update:
        record["events"] = [_entry_record(entry) for entry in update["events"]]
    if "members" in update:
        record["members"] = {
            member: {**known, "events": [_entry_record(entry) for entry in known["events"]]}
            for member, known in update["members"].items()
        }
    return codec.encode(ALERT_VIEW_UPDATE_SCHEMA, record)


def decode_update(codec: AvroCodec, data: bytes) -> Update:
    """The update dict an `encode_update` was given; BadInput if not an AlertViewUpdate."""
    record = codec.decode_as(ALERT_VIEW_UPDATE_SCHEMA, data)
    update: Update = {"kind": record["kind"]}
    update.update((name, record[name]) for name in _FIELDS if record[name] is not None)
    if "events" in update:
        update["events"] = [_entry_of_record(entry) for entry in update["events"]]
    if "members" in update:
        update["members"] = {
            member: {**known, "events": [_entry_of_record(entry) for entry in known["events"]]}
            for member, known in update["members"].items()
        }
    return update


def _entry_record(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "details": orjson.dumps(entry["details"]).decode()}


def _entry_of_record(record: dict[str, Any]) -> dict[str, Any]:
    try:
        details = orjson.loads(record["details"])
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"not JSON: {exc}", field="events.details") from None
    entry = {**record, "details": details}
    if not entry["initial_load"]:
        del entry["initial_load"]  # views carry it only when true (compact_entry)
    return entry
