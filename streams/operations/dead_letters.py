"""Events a processor cannot read go to the dead-letter topic; the stream goes on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust

from backbone.codec import AvroCodec
from backbone.errors import BadInput
from backbone.frames import FramedEvent, decode_frame
from backbone.logging import get_logger
from backbone.metrics import DEAD_LETTERS

log = get_logger(__name__)


class DeadLetters:
    """Decodes events for processors; unreadable ones go to the dead-letter topic with the
    processor and the reason in headers."""

    def __init__(self, topic: faust.TopicT, codec: AvroCodec) -> None:
        self._codec = codec
        self._topic = topic

    async def decode(self, processor: str, event: faust.EventT[bytes]) -> dict[str, Any] | None:
        """The event's Avro record, or None after dead-lettering an undecodable one."""
        try:
            return self._codec.decode(event.value).record
        except BadInput as exc:
            await self.send(processor, event.value, f"undecodable: {exc}", event.message.topic)
            return None

    async def decode_frame(
        self, processor: str, event: faust.EventT[bytes]
    ) -> list[FramedEvent] | None:
        """The frame's events, or None after dead-lettering a frame that does not decode."""
        try:
            return decode_frame(self._codec, event.value)
        except BadInput as exc:
            await self.send(processor, event.value, f"undecodable: {exc}", event.message.topic)
            return None

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
