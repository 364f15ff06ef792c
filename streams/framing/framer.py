"""The framer: agency topics (one event per message) into frames, without Faust.

A Faust agent costs ~0.33 ms of CPU per Kafka message; confluent-kafka reads and fastavro
decodes far faster. So a plain consumer reads the agency topics in batches, groups each batch by
partition number and writes the events as frames (backbone/frames.py) to the same partition
number of the target topic. All agency topics have the same partition count and are keyed with
the same murmur2 hash, so a record's events of every agency meet on one target partition.

Offsets are committed only after the broker acknowledged every frame holding the events before
them: an event may be framed twice (a failed delivery is retried, a crash repeats the last
batch; downstream dedups by event id), never lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter

from backbone.codec import AvroCodec
from backbone.errors import FatalError
from backbone.frames import FramedEvent, encode_frame, frames_of
from backbone.logging import get_logger

log = get_logger(__name__)

FRAMES_OUT = Counter(
    "backbone_frames_out_total",
    "Frames the framer wrote to a topic and had acknowledged",
    ["topic"],
)
FRAMED_EVENTS = Counter(
    "backbone_framed_events_total",
    "Events the framer wrote to a topic inside acknowledged frames",
    ["topic"],
)

SourcePartition = tuple[str, int]
RawHeaders = Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]]


class _Deliveries:
    """What the broker said about one batch's frames."""

    __slots__ = ("errors", "events", "fatal", "first_failed", "frames", "outstanding")

    def __init__(self) -> None:
        self.frames = 0
        self.events = 0
        self.errors: list[str] = []
        self.fatal: str | None = None
        # Frames handed to librdkafka and not yet answered, by the order they were produced.
        self.outstanding: dict[int, tuple[list[FramedEvent], int]] = {}
        # Per source partition, the lowest offset in a frame the broker did not take.
        self.first_failed: dict[SourcePartition, int] = {}

    def report(self, number: int, err: KafkaError | None, _msg: Message) -> None:
        """Delivery callback of one frame (served by flush(), on the framer's thread)."""
        answered = self.outstanding.pop(number, None)
        if answered is None:
            return  # already counted as failed when flush() gave up waiting
        frame, partition = answered
        if err is None:
            self.frames += 1
            self.events += len(frame)
            return
        if err.fatal():
            self.fatal = err.str()
        self.fail(frame, partition, err.str())

    def fail(self, frame: list[FramedEvent], partition: int, reason: str) -> None:
        """Note a frame the broker did not take: its events must be read again."""
        self.errors.append(reason)
        for event in frame:
            # The framer sets source_topic and source_offset on every event it frames.
            source = (event.source_topic or "", partition)
            offset = event.source_offset or 0
            if offset < self.first_failed.get(source, offset + 1):
                self.first_failed[source] = offset


class Framer:
    """Frames `source_topics` onto `target_topic`, partition number for partition number, in a
    background thread; commits a batch's offsets once all its frames are acknowledged.

    A frame may wait `delivery_timeout_s` for the broker; after a batch with refused frames the
    framer waits `retry_backoff_s` and reads their events again. `session_timeout_s` is how long
    a dead framer keeps its partitions. `client_config` adds librdkafka settings to both
    clients.
    """

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        source_topics: Sequence[str],
        target_topic: str,
        codec: AvroCodec,
        *,
        max_events_per_frame: int = 500,
        max_frame_bytes: int = 900_000,
        max_poll: int = 5000,
        poll_timeout_s: float = 0.05,
        delivery_timeout_s: float = 30.0,
        retry_backoff_s: float = 1.0,
        session_timeout_s: float = 45.0,
        client_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.group_id = group_id
        self.source_topics = list(source_topics)
        self.target_topic = target_topic
        self._codec = codec
        self._max_events = max_events_per_frame
        # Kafka refuses messages over 1 MiB by default (message.max.bytes); the margin covers
        # the record batch's own overhead.
        self._max_bytes = max_frame_bytes
        self._max_poll = max_poll
        self._poll_timeout_s = poll_timeout_s
        self._delivery_timeout_s = delivery_timeout_s
        self._retry_backoff_s = retry_backoff_s
        extra = dict(client_config or {})
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group_id,
                "client.id": f"{group_id}-consumer",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # Range gives one member the same partition number of every source topic, so
                # its frames for a partition gather all agencies' events.
                "partition.assignment.strategy": "range",
                # Without a heartbeat this long, the group hands a dead framer's partitions on.
                "session.timeout.ms": int(session_timeout_s * 1000),
                **extra,
            }
        )
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": f"{group_id}-producer",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",  # as the connectors' publisher
                "message.timeout.ms": int(delivery_timeout_s * 1000),
                **extra,
            }
        )
        self._assignment: list[SourcePartition] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._closed = False
        self.events_framed = 0
        self.frames_written = 0
        self.cpu_seconds = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe and frame in a background thread until stop()."""
        if self._thread is not None:
            raise RuntimeError("a Framer starts once")
        self._thread = threading.Thread(
            target=self._run_in_thread, name=f"framer-{self.group_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Finish the batch in hand (at most one delivery timeout), then leave the group."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        if not self._closed:
            self._closed = True
            self._consumer.close()
            self._producer.flush(self._delivery_timeout_s)  # nothing is pending between batches
            self._producer.close()

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def failure(self) -> BaseException | None:
        """What stopped the framer's thread, if anything but stop() did."""
        return self._failure

    @property
    def assignment(self) -> list[SourcePartition]:
        """The source partitions this member owns since the last rebalance."""
        return list(self._assignment)

    def _run(self) -> None:
        """The framer's thread; raises FatalError on what retrying cannot mend (a fatal Kafka
        error, a partition it cannot rewind)."""
        self._consumer.subscribe(
            self.source_topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        log.info("framer_started", group=self.group_id, target=self.target_topic)
        started_cpu = time.thread_time()
        while not self._stopping.is_set():
            messages = self._consumer.consume(self._max_poll, self._poll_timeout_s)
            if messages and not self._frame_batch(messages):
                self._stopping.wait(self._retry_backoff_s)  # the broker needs a moment
            self.cpu_seconds = time.thread_time() - started_cpu
        log.info("framer_stopped", group=self.group_id, events=self.events_framed)

    def _run_in_thread(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a thread's exception is lost unless kept
            self._failure = exc
            log.error("framer_failed", group=self.group_id, error=str(exc), exc_info=True)

    # -- rebalances ------------------------------------------------------------------------

    # Each batch is produced, flushed and committed before the next consume(), and rebalance
    # callbacks run only inside consume(): when partitions are revoked nothing is in flight and
    # everything framed is committed, so the next owner starts exactly where this one stopped.
    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment = [(tp.topic, tp.partition) for tp in partitions]
        log.info("framer_assigned", group=self.group_id, partitions=len(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assignment = []
        log.info("framer_revoked", group=self.group_id, partitions=len(partitions))

    # -- one batch -------------------------------------------------------------------------

    def _frame_batch(self, messages: list[Message]) -> bool:
        """Frame, deliver and commit one batch; False if some frames must be read again."""
        by_partition: dict[int, list[FramedEvent]] = {}
        next_offsets: dict[SourcePartition, int] = {}
        for message in messages:
            err = message.error()
            if err is not None:
                if err.fatal():
                    raise FatalError(f"Kafka consumer failed: {err.str()}")
                # Informational (a broker went away, librdkafka reconnects by itself).
                log.warning("framer_consume_error", group=self.group_id, error=err.str())
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None:
                continue
            next_offsets[(topic, partition)] = offset + 1
            value = message.value()
            if value is None:
                continue  # a tombstone carries no event; its offset is committed past
            event = FramedEvent(message.key(), value, _headers(message.headers()), topic, offset)
            events = by_partition.get(partition)
            if events is None:
                by_partition[partition] = [event]
            else:
                events.append(event)

        deliveries = self._deliver(by_partition)
        self.frames_written += deliveries.frames
        self.events_framed += deliveries.events
        if deliveries.frames:
            FRAMES_OUT.labels(self.target_topic).inc(deliveries.frames)
            FRAMED_EVENTS.labels(self.target_topic).inc(deliveries.events)
        if deliveries.fatal is not None:
            raise FatalError(f"Kafka producer failed: {deliveries.fatal}")
        if deliveries.first_failed:
            log.warning(
                "frames_not_delivered",
                group=self.group_id,
                target=self.target_topic,
                failed_frames=len(deliveries.errors),
                error=deliveries.errors[0],
            )
        self._commit(next_offsets, deliveries.first_failed)
        return not deliveries.first_failed

    def _deliver(self, by_partition: dict[int, list[FramedEvent]]) -> _Deliveries:
        """Produce every frame to its partition number and wait for the broker's answers."""
        deliveries = _Deliveries()
        number = 0
        for partition, events in by_partition.items():
            for frame in frames_of(events, self._max_events, self._max_bytes):
                data = encode_frame(self._codec, frame)
                self._produce(data, partition, frame, deliveries, number)
                number += 1
        if deliveries.outstanding:
            self._producer.flush(self._delivery_timeout_s + 5.0)
        if deliveries.outstanding:
            # Unanswered frames count as failed: they may still land (a duplicate), or not.
            for frame, partition in deliveries.outstanding.values():
                deliveries.fail(frame, partition, "no delivery report in time")
            deliveries.outstanding.clear()
        return deliveries

    def _produce(
        self,
        data: bytes,
        partition: int,
        frame: list[FramedEvent],
        deliveries: _Deliveries,
        number: int,
    ) -> None:
        """Hand one frame to librdkafka, or count it failed if librdkafka refuses it at once."""
        callback = partial(deliveries.report, number)
        deliveries.outstanding[number] = (frame, partition)
        while True:
            try:
                self._producer.produce(
                    self.target_topic, data, None, partition=partition, on_delivery=callback
                )
            except BufferError:
                self._producer.poll(0.1)  # the local queue is full: let deliveries drain it
                continue
            except KafkaException as exc:
                del deliveries.outstanding[number]
                err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if err is not None and err.fatal():
                    deliveries.fatal = err.str()
                deliveries.fail(frame, partition, err.str() if err is not None else str(exc))
            return

    def _commit(
        self, next_offsets: dict[SourcePartition, int], first_failed: dict[SourcePartition, int]
    ) -> None:
        """Commit what is on the target; rewind the partitions whose frames did not land."""
        commits = []
        for (topic, partition), offset in next_offsets.items():
            # Every event before the first failed one sits in an acknowledged frame.
            failed_at = first_failed.get((topic, partition))
            commits.append(
                TopicPartition(topic, partition, offset if failed_at is None else failed_at)
            )
        for (topic, partition), offset in first_failed.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                # Reading on past the failed events would commit past them later: stop, and
                # let a restart read from the committed offsets.
                raise FatalError(
                    f"cannot rewind {topic}[{partition}] to {offset} after a failed delivery: {exc}"
                ) from exc
        if not commits:
            return  # the batch held only error notices
        try:
            results = self._consumer.commit(offsets=commits, asynchronous=False)
        except KafkaException as exc:
            # The group moved on (rebalance) or the coordinator is away: the next owner reads
            # from the last commit, so these events are framed again, not lost.
            log.warning("framer_commit_failed", group=self.group_id, error=str(exc))
            return
        refused = [tp for tp in results if tp.error is not None]
        if refused:
            log.warning(
                "framer_commit_failed",
                group=self.group_id,
                partitions=len(refused),
                error=str(refused[0].error),
            )


def _headers(raw: RawHeaders | None) -> dict[str, bytes]:
    """A message's headers as the frame's map; a header without value becomes empty bytes."""
    if not raw:
        return {}
    items = raw.items() if isinstance(raw, Mapping) else raw
    return {
        name: value if isinstance(value, bytes) else (value or "").encode() for name, value in items
    }
