"""Events a processor cannot read go to the dead-letter topic; the stream goes on."""

from __future__ import annotations

from datetime import UTC, datetime

import faust

from backbone.logging import get_logger
from backbone.metrics import DEAD_LETTERS
from backbone.topics import Topics

log = get_logger(__name__)


class DeadLetters:
    """Writes unreadable events, with the processor and the reason in headers."""

    def __init__(self, app: faust.App, topics: Topics) -> None:
        self._topic = app.topic(topics.dead_letter, key_serializer="raw", value_serializer="raw")

    async def send(self, processor: str, raw: bytes, reason: str, source: str) -> None:
        headers = {
            "processor": processor.encode(),
            "reason": reason.encode(),
            "source": source.encode(),
            "received_at": datetime.now(UTC).isoformat().encode(),
        }
        await self._topic.send(key=processor.encode(), value=raw, headers=headers)
        DEAD_LETTERS.labels(processor, reason.split(":", 1)[0]).inc()
        log.warning("event_dead_lettered", processor=processor, reason=reason, source=source)
