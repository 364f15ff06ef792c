"""The hospital ADT connector: an MLLP server the patient administration system pushes to.

Every message is answered only after its outcome is durable: AA once the event is
acknowledged by Kafka, AE once the raw message is on the dead-letter topic, AR when Kafka
cannot take either (the sender resends). One bad message never blocks the connection.

Position: MLLP is push-based, so this connector keeps no stored position. The ACK is the
commit: the sender holds every message until it is acknowledged and resends it otherwise
(after a crash, on AR, or when no answer came), and a resent message has the same event id
because the id derives from MSH-4 and MSH-10.
"""

from __future__ import annotations

import contextlib
import time
from zoneinfo import ZoneInfo

from backbone.errors import BadInput, TransientError
from backbone.events import HealthEvent
from backbone.logging import get_logger
from backbone.metrics import EVENTS_IN, MLLP_CONNECTIONS
from connectors.hl7_mllp.ack import AckCode, Inbound, acknowledgement
from connectors.hl7_mllp.config import Hl7MllpSettings
from connectors.hl7_mllp.mapping import MappingRules, to_event
from connectors.hl7_mllp.message import SEGMENT_SEQUENCE_ERROR, Hl7Message, MessageProblem
from connectors.hl7_mllp.mllp import Frame, FramingProblem, MllpServer
from connectors.runtime import ConnectorRuntime

log = get_logger(__name__)


class Hl7MllpConnector:
    """The health connector: HL7 v2.5 ADT over MLLP in, HealthEvents on Kafka out."""

    name = "hl7-mllp"

    def __init__(self, settings: Hl7MllpSettings) -> None:
        self.settings = settings
        self._runtime: ConnectorRuntime | None = None
        self._rules: MappingRules | None = None
        self._server = MllpServer(
            settings.mllp_host,
            settings.mllp_port,
            self.receive,
            settings.mllp_max_message_bytes,
            settings.mllp_max_in_flight,
        )

    async def start(self, runtime: ConnectorRuntime) -> None:
        """Start listening for the hospital's connections."""
        self._runtime = runtime
        self._rules = MappingRules(
            runtime.pseudonyms,
            self.settings.mllp_source_system,
            ZoneInfo(self.settings.mllp_timezone),
        )
        # Read at every scrape: the count is always current and costs nothing in between.
        MLLP_CONNECTIONS.labels(self.name).set_function(self._server.open_connections)
        await self._server.start()

    async def stop(self) -> None:
        """Stop taking messages and answer those in flight."""
        await self._server.stop()

    async def receive(self, received: Frame) -> bytes | None:
        """Handle one message and return the ACK to send back (None for stray bytes)."""
        started = time.perf_counter()
        if received.problem is FramingProblem.NO_START:
            # Nobody waits for an answer to bytes outside a frame; they are kept for a look.
            with contextlib.suppress(TransientError):
                await self._dead_letter(received, self._framing_problem(received.problem))
            return None
        EVENTS_IN.labels(self.name, "health").inc()
        message: Hl7Message | None = None
        try:
            message = self._parse(received)
            event = self._map(message)
            await self._require_runtime().emit(event, started)
        except BadInput as problem:
            return await self._refuse(received, message, problem)
        except TransientError as exc:
            return self._reject(message, exc)
        return self._answer(AckCode.ACCEPT, message)

    def _parse(self, received: Frame) -> Hl7Message:
        if received.problem is not None:
            raise self._framing_problem(received.problem)
        return Hl7Message.parse(received.payload, self.settings.mllp_encoding)

    def _framing_problem(self, problem: FramingProblem) -> MessageProblem:
        reason = problem.value
        if problem is FramingProblem.OVERSIZE:
            reason = f"message is larger than {self.settings.mllp_max_message_bytes} bytes"
        return MessageProblem(reason, field="MLLP", condition=SEGMENT_SEQUENCE_ERROR)

    def _map(self, message: Hl7Message) -> HealthEvent:
        try:
            return to_event(message, self._require_rules())
        except BadInput:
            raise
        except Exception as exc:
            # A message the mapping cannot handle must not be resent forever and block the
            # sender's queue: it is dead-lettered with what went wrong, like bad input.
            log.exception("mllp_message_unmappable")
            raise MessageProblem(f"cannot be mapped: {exc!r}", field="message") from exc

    async def _refuse(
        self, received: Frame, message: Hl7Message | None, problem: BadInput
    ) -> bytes:
        """AE, once the raw message is on the dead-letter topic (AR if Kafka cannot take it)."""
        try:
            await self._dead_letter(received, problem)
        except TransientError as exc:
            return self._reject(message, exc)
        return self._answer(AckCode.ERROR, message, problem)

    async def _dead_letter(self, received: Frame, problem: BadInput) -> None:
        await self._require_runtime().dead_letter(
            received.payload, str(problem), source=f"mllp://{received.peer}"
        )

    def _reject(self, message: Hl7Message | None, exc: TransientError) -> bytes:
        log.warning("mllp_message_rejected", reason=str(exc))
        return self._answer(AckCode.REJECT, message, None)

    def _answer(
        self, code: AckCode, message: Hl7Message | None, problem: BadInput | None = None
    ) -> bytes:
        return acknowledgement(code, Inbound.of(message), self.settings.mllp_application, problem)

    def _require_runtime(self) -> ConnectorRuntime:
        if self._runtime is None:
            raise RuntimeError("the hl7-mllp connector is not started")
        return self._runtime

    def _require_rules(self) -> MappingRules:
        if self._rules is None:
            raise RuntimeError("the hl7-mllp connector is not started")
        return self._rules
