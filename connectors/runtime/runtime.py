"""What a connector gets from the runtime: publish an event, dead-letter an input, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from backbone.codec import AvroCodec, SchemaStore
from backbone.errors import BadInput, TransientError
from backbone.events import AgencyEvent
from backbone.logging import get_logger
from backbone.metrics import DEAD_LETTERS, EVENTS_OUT, PROCESSING_SECONDS, exposition
from backbone.pseudonyms import Pseudonymiser
from backbone.topics import Topics, ensure_topics
from connectors.runtime.config import ConnectorSettings
from connectors.runtime.positions import PositionStore
from connectors.runtime.publisher import Publisher

log = get_logger(__name__)
TOPICS_TIMEOUT_S = 5.0
# Kafka refuses records over about 1 MB (the producer's message.max.bytes); a record stays
# under this, with room for its headers. An event over it is bad input; a dead letter keeps
# the first bytes of its raw input.
MAX_RECORD_BYTES = 900_000
# The dead-letter reason header quotes no more of the input than this.
MAX_REASON_CHARS = 1000
# Distinct `reason` labels of backbone_dead_letters_total per process; later ones count as
# "other". A reason names a field, and some field names come from the input (a JSON key).
MAX_REASON_LABELS = 100


class ConnectorRuntime:
    """Shared services of one connector process."""

    def __init__(self, name: str, settings: ConnectorSettings) -> None:
        self.name = name
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.codec = AvroCodec(SchemaStore(settings.schemas_dir))
        self.pseudonyms = Pseudonymiser(settings.pseudonym_key.get_secret_value().encode())
        self._publisher: Publisher | None = None
        self._positions: PositionStore | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._topics_task: asyncio.Task[None] | None = None
        self._reason_labels: set[str] = set()
        self.topics_ready = False

    async def start(self) -> None:
        """Create the topics, open the producer and serve /metrics and /health.

        Kafka being down at start is not fatal: the connector comes up, refuses input it
        cannot store (503, AR) and keeps trying to create its topics in the background.
        """
        if not await self._try_ensure_topics():
            self._topics_task = asyncio.create_task(self._ensure_topics_until_done())
        self._publisher = Publisher(
            self.settings.kafka_bootstrap, self.name, self.settings.delivery_timeout_s
        )
        self._positions = PositionStore(
            self.settings.kafka_bootstrap,
            self.topics.connector_positions,
            self.name,
            self._publisher,
        )
        self._metrics_runner = await serve_operations(
            self.settings.metrics_host, self.settings.metrics_port, self.health
        )
        log.info("connector_started", connector=self.name, metrics_port=self.settings.metrics_port)

    async def _try_ensure_topics(self) -> bool:
        try:
            await asyncio.to_thread(ensure_topics, self.settings, TOPICS_TIMEOUT_S)
        except TransientError as exc:
            log.warning("kafka_unavailable", connector=self.name, error=str(exc))
            return False
        self.topics_ready = True
        return True

    async def _ensure_topics_until_done(self) -> None:
        delay = 1.0
        while not await self._try_ensure_topics():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def health(self) -> dict[str, object]:
        """What /health reports: up, and whether Kafka has the connector's topics."""
        return {"status": "ok", "connector": self.name, "kafka_topics": self.topics_ready}

    async def stop(self) -> None:
        """Flush in-flight records, then close the operations endpoint."""
        if self._topics_task is not None:
            self._topics_task.cancel()
        if self._publisher is not None:
            left = self._publisher.close()
            if left:
                log.error("records_undelivered_at_stop", connector=self.name, count=left)
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()

    @property
    def publisher(self) -> Publisher:
        """The idempotent producer (after `start`)."""
        if self._publisher is None:
            raise RuntimeError("the connector runtime is not started")
        return self._publisher

    @property
    def positions(self) -> PositionStore:
        """This connector's durable positions (after `start`)."""
        if self._positions is None:
            raise RuntimeError("the connector runtime is not started")
        return self._positions

    async def emit(self, event: AgencyEvent, started: float) -> None:
        """Encode a validated event and publish it to its agency's topic, keyed by subject."""
        envelope = event.envelope
        topic = self.topics.agency_events(envelope.agency)
        value = self.codec.encode(event.schema_name(), event.to_avro())
        if len(value) > MAX_RECORD_BYTES:
            raise BadInput(
                f"the event is {len(value)} bytes encoded, more than Kafka takes "
                f"({MAX_RECORD_BYTES})",
                field="size",
            )
        headers = [
            ("event_id", envelope.event_id.encode()),
            ("schema", event.schema_name().encode()),
        ]
        await self.publisher.publish(topic, envelope.subject.record_id.encode(), value, headers)
        EVENTS_OUT.labels(self.name, envelope.agency.value, topic).inc()
        PROCESSING_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        log.info(
            "event_published",
            connector=self.name,
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            topic=topic,
        )

    async def dead_letter(self, raw: bytes, reason: str, source: str) -> None:
        """Send input that cannot be processed, with why and where from, to the dead-letter topic.

        Raises TransientError if Kafka does not take it: the caller must then refuse the input
        (so the sender retries) rather than drop it. Raw input over MAX_RECORD_BYTES keeps its
        first bytes, and the header `original_bytes` tells how long it was.
        """
        reason = reason[:MAX_REASON_CHARS]
        headers = [
            ("connector", self.name.encode()),
            ("reason", reason.encode()),
            ("source", source.encode()),
            ("received_at", datetime.now(UTC).isoformat().encode()),
        ]
        if len(raw) > MAX_RECORD_BYTES:
            headers.append(("original_bytes", str(len(raw)).encode()))
            raw = raw[:MAX_RECORD_BYTES]
        await self.publisher.publish(self.topics.dead_letter, self.name.encode(), raw, headers)
        DEAD_LETTERS.labels(self.name, self._reason_label(reason)).inc()
        log.warning("input_dead_lettered", connector=self.name, reason=reason, source=source)

    def _reason_label(self, reason: str) -> str:
        """The field a reason names, as a metric label of bounded cardinality."""
        label = reason.split(":", 1)[0][:100]
        if label not in self._reason_labels:
            if len(self._reason_labels) >= MAX_REASON_LABELS:
                return "other"
            self._reason_labels.add(label)
        return label


async def serve_operations(
    host: str, port: int, health_report: Callable[[], dict[str, object]]
) -> web.AppRunner:
    """Serve `/metrics` (Prometheus) and `/health` for operators."""

    async def metrics(_request: web.Request) -> web.Response:
        body, content_type = exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def health(_request: web.Request) -> web.Response:
        return web.json_response(health_report())

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
