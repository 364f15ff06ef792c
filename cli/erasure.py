"""Right to erasure: `backbone erase` asks the identity resolver to forget one person.

The request is a command (a `backbone.identity.IdentityCommand`) on `identity-input`, the
one-partition topic whose one reader (the identity resolver, streams/identity/commands.py) owns
who is who: it erases the person the agency record belongs to and confirms on
`identity-decisions`, keyed by the record id, with the command id. The command waits for that
confirmation and writes the erasure to the audit topic (an `AuditRecord` with action `erase`)
whatever the outcome.
"""

from __future__ import annotations

import getpass
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import AUDIT_SCHEMA, ERASE, Agency, check_id_type
from backbone.errors import BadInput, TransientError
from backbone.frames import decode_frame
from backbone.identity_commands import encode_command
from backbone.pseudonyms import Pseudonymiser
from backbone.settings import BackboneSettings
from backbone.topics import Topics
from streams.identity.messages import decode_decision


@dataclass(frozen=True)
class Erasure:
    """What the resolver did: the person erased (None: no person had that identifier)."""

    record_id: str
    person_id: str | None
    records: int


def erase(
    settings: BackboneSettings,
    agency: str,
    id_type: str,
    local_id: str,
    reason: str,
    timeout_s: float,
) -> Erasure:
    """Erase the person an agency identifier belongs to; audited; TransientError if the
    resolver did not confirm within `timeout_s` (the command stays queued and will run)."""
    if agency not in {a.value for a in Agency}:
        raise BadInput(f"must be one of {', '.join(a.value for a in Agency)}", field="agency")
    check_id_type(Agency(agency), id_type)
    if not reason.strip():
        raise BadInput("a reason is required", field="reason")
    pseudonyms = Pseudonymiser(settings.pseudonym_key.get_secret_value().encode())
    record_id = pseudonyms.record_id(agency, id_type, local_id)
    topics = Topics(settings.topic_prefix)
    operator = f"operator {getpass.getuser()}"
    outcome = 504
    try:
        erasure = _request(settings, topics, record_id, reason.strip(), operator, timeout_s)
        outcome = 200 if erasure.person_id else 404
        return erasure
    finally:
        _audit(settings, topics, operator, reason, record_id, outcome)


def _request(
    settings: BackboneSettings,
    topics: Topics,
    record_id: str,
    reason: str,
    operator: str,
    timeout_s: float,
) -> Erasure:
    command_id = str(uuid.uuid4())
    codec = AvroCodec(SchemaStore(settings.schemas_dir))
    confirmations = _listen_from_now(settings, topics.identity_decisions)
    try:
        command = {
            "command": ERASE,
            "command_id": command_id,
            "record_id": record_id,
            "reason": reason,
            "coordinator": operator,
        }
        _send(settings, topics.identity_input, record_id.encode(), encode_command(codec, command))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = confirmations.poll(0.5)
            value = None if message is None or message.error() else message.value()
            if not value:
                continue
            for decision in _decisions(codec, value):
                if decision.get("command_id") == command_id:
                    erased = decision.get("erased_person_id")
                    return Erasure(record_id, erased, decision["records"])
    finally:
        confirmations.close()
    raise TransientError(
        f"the identity resolver did not confirm the erasure within {timeout_s:.0f} s; "
        "the request is queued and will be applied when a worker runs"
    )


def _decisions(codec: AvroCodec, value: bytes) -> list[dict[str, Any]]:
    """The decisions of a frame on identity-decisions; what does not decode is not ours."""
    try:
        return [decode_decision(codec, framed.value) for framed in decode_frame(codec, value)]
    except BadInput:
        return []


def _listen_from_now(settings: BackboneSettings, topic: str) -> Consumer:
    """A consumer of `topic` from its current end, positioned before the command is sent."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.topic_prefix}-erase-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = []
    for partition in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        ends.append(TopicPartition(topic, partition, high if high >= 0 else OFFSET_END))
    consumer.assign(ends)
    return consumer


def _send(settings: BackboneSettings, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
    producer.produce(topic, key=key, value=value)
    if producer.flush(30.0) != 0:
        raise TransientError(f"Kafka did not acknowledge the write to {topic}")


def _audit(
    settings: BackboneSettings,
    topics: Topics,
    operator: str,
    reason: str,
    record_id: str,
    outcome: int,
) -> None:
    """The erasure on the audit trail, as the API's requests are (the record id is hashed)."""
    record = {
        "audit_id": str(uuid.uuid4()),
        "at": datetime.now(UTC),
        "coordinator": operator,
        "role": "operator",
        "teams": [],
        "purpose": reason,
        "action": ERASE,
        "resource": f"record {record_id}",
        "outcome": outcome,
    }
    codec = AvroCodec(SchemaStore(settings.schemas_dir))
    _send(settings, topics.audit, operator.encode(), codec.encode(AUDIT_SCHEMA, record))
