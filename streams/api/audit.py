"""The coordinator API's audit trail: every request, who, why, what and the outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import faust

from backbone.codec import AvroCodec
from backbone.contracts import AUDIT_SCHEMA
from backbone.logging import get_logger
from backbone.tokens import Coordinator

log = get_logger(__name__)


class AuditTrail:
    """Writes one Avro AuditRecord per API request to the audit topic."""

    def __init__(self, topic: faust.TopicT, codec: AvroCodec) -> None:
        self._codec = codec
        self._topic = topic

    async def record(
        self,
        caller: Coordinator | None,
        purpose: str | None,
        action: str,
        resource: str,
        outcome: int,
    ) -> None:
        """Write the record and wait for Kafka to acknowledge it (fail closed)."""
        record = {
            "audit_id": str(uuid.uuid4()),
            "at": datetime.now(UTC),
            "coordinator": caller.name if caller else None,
            "role": caller.role if caller else None,
            "teams": list(caller.teams) if caller else [],
            "purpose": purpose,
            "action": action,
            "resource": resource,
            "outcome": outcome,
        }
        value = self._codec.encode(AUDIT_SCHEMA, record)
        key = (caller.name if caller else "anonymous").encode()
        delivery = await self._topic.send(key=key, value=value)
        await delivery
        log.info(
            "api_request_audited",
            action=action,
            resource=resource,
            outcome=outcome,
            coordinator=record["coordinator"],
            purpose=purpose,
        )
