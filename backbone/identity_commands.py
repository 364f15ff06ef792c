"""Identity commands: what someone asks the identity resolver to change, on `identity-input`.

A coordinator's review decision, merge or split (streams/api/) and an operator's erasure
(`backbone erase`, cli/erasure.py) are `backbone.identity.IdentityCommand` records, one per
Kafka message, unframed. The resolver reads frames and commands from the same one-partition
topic and tells them apart by the writer schema in the message's single-object header
(`is_command`), so commands are applied in order with the records it resolves. Here so both the
CLI and the streams can import it (the kernel imports neither).
"""

from __future__ import annotations

from typing import Any

from backbone.codec import AvroCodec
from backbone.contracts import IDENTITY_COMMAND_SCHEMA

# The fields each command may carry beside `command`, in the order its dict has them.
_FIELDS = (
    "command_id",
    "review_id",
    "decision",
    "person_ids",
    "person_id",
    "records",
    "record_id",
    "reason",
    "coordinator",
)


def encode_command(codec: AvroCodec, command: dict[str, Any]) -> bytes:
    """A command dict (`command` its kind, plus that kind's fields) as an IdentityCommand;
    BadInput if it does not fit."""
    return codec.encode(IDENTITY_COMMAND_SCHEMA, command)


def decode_command(codec: AvroCodec, data: bytes) -> dict[str, Any]:
    """The command dict an `encode_command` was given: `command` and its kind's fields (those
    set); BadInput if `data` is not an IdentityCommand."""
    record = codec.decode_as(IDENTITY_COMMAND_SCHEMA, data)
    command: dict[str, Any] = {"command": record["command"]}
    command.update((name, record[name]) for name in _FIELDS if record[name] is not None)
    return command


def is_command(codec: AvroCodec, data: bytes) -> bool:
    """Whether a message on identity-input is a command (else it is a frame), by its writer
    schema, without decoding it."""
    return codec.writer_name(data) == IDENTITY_COMMAND_SCHEMA
