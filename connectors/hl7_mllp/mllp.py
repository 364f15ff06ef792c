"""MLLP: HL7 messages framed on a TCP stream, and the asyncio server that answers them.

A frame is 0x0B, the message, 0x1C 0x0D. One connection carries many frames; a TCP read may
hold several frames or part of one. Answers go back in the order the messages came, one per
message, even when a sender pipelines (sends before the previous answer arrived).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from backbone.logging import get_logger

log = get_logger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
READ_SIZE = 64 * 1024


def frame(payload: bytes) -> bytes:
    """`payload` wrapped in MLLP's start and end blocks."""
    return START_BLOCK + payload + END_BLOCK


@dataclass(frozen=True)
class Frame:
    """One received message. `oversize` frames hold only their first bytes."""

    payload: bytes
    peer: str
    oversize: bool = False


class FrameDecoder:
    """Cuts a byte stream into frames, whatever the TCP reads look like.

    Bytes outside a frame (before a start block) are line noise and dropped. A frame longer
    than `max_bytes` is not buffered whole: its first `max_bytes` are kept for the dead-letter
    topic and the rest skipped up to its end block, so the stream stays in step.
    """

    def __init__(self, max_bytes: int, peer: str) -> None:
        self._max = max_bytes
        self._peer = peer
        self._buffer = bytearray()
        self._head: bytes | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by `data` (possibly none)."""
        self._buffer += data
        frames: list[Frame] = []
        while (end := self._buffer.find(END_BLOCK)) >= 0:
            content = bytes(self._buffer[:end])
            del self._buffer[: end + len(END_BLOCK)]
            truncated = self._head is not None
            if self._head is not None:
                content, self._head = self._head, None
            if START_BLOCK in content:
                payload = _after_start(content)
                oversize = truncated or len(payload) > self._max
                frames.append(Frame(payload[: self._max], self._peer, oversize=oversize))
        if len(self._buffer) > self._max + len(END_BLOCK):
            if self._head is None:
                self._head = bytes(self._buffer[: self._max + len(START_BLOCK)])
            # Keep the last byte: it may be the first half of the end block.
            del self._buffer[:-1]
        return frames


def _after_start(content: bytes) -> bytes:
    return content[content.find(START_BLOCK) + len(START_BLOCK) :]


Handler = Callable[[Frame], Coroutine[Any, Any, bytes]]


class MllpServer:
    """Accepts MLLP connections and answers every frame with what `handler` returns."""

    def __init__(
        self, host: str, port: int, handler: Handler, max_message_bytes: int, max_in_flight: int
    ) -> None:
        self._host = host
        self._port = port
        self._handler = handler
        self._max_message_bytes = max_message_bytes
        self._max_in_flight = max_in_flight
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamReader] = {}
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        """Listen; connections are served until `stop`."""
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        log.info("mllp_listening", host=self._host, port=self._port)

    def open_connections(self) -> int:
        """How many senders are connected right now."""
        return len(self._connections)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop accepting, stop reading, answer what is in flight, then close connections.

        Messages read but not yet answered are finished (their events reach Kafka and their
        ACKs are sent); anything the sender sent after that gets no answer and is resent.
        """
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            if isinstance(writer.transport, asyncio.ReadTransport):
                writer.transport.pause_reading()
        for reader in self._connections.values():
            reader.feed_eof()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=timeout_s)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # nosec B101 # a connection handler always runs in a task
        self._connections[task] = reader
        self._writers.append(writer)
        peer = _peer_name(writer)
        log.info("mllp_connection_opened", peer=peer)
        try:
            await self._converse(reader, writer, peer)
        finally:
            del self._connections[task]
            self._writers.remove(writer)
            writer.close()
            log.info("mllp_connection_closed", peer=peer)

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        # A bounded queue of answers in arrival order: a pipelining sender is throttled here.
        answers: asyncio.Queue[asyncio.Task[bytes] | None] = asyncio.Queue(self._max_in_flight)
        replier = asyncio.create_task(_reply_in_order(answers, writer, peer))
        decoder = FrameDecoder(self._max_message_bytes, peer)
        try:
            while data := await _read(reader, peer):
                for received in decoder.feed(data):
                    await answers.put(asyncio.create_task(self._handler(received)))
        finally:
            await answers.put(None)
            await replier


async def _read(reader: asyncio.StreamReader, peer: str) -> bytes:
    try:
        return await reader.read(READ_SIZE)
    except ConnectionError as exc:
        log.info("mllp_connection_lost", peer=peer, error=str(exc))
        return b""


async def _reply_in_order(
    answers: asyncio.Queue[asyncio.Task[bytes] | None], writer: asyncio.StreamWriter, peer: str
) -> None:
    """Send each answer when it is ready, in the order the messages arrived."""
    connected = True
    while (pending := await answers.get()) is not None:
        answer = await pending
        if not connected:
            continue  # the sender went away; it will resend what it got no answer for
        try:
            writer.write(frame(answer))
            await writer.drain()
        except ConnectionError as exc:
            connected = False
            log.info("mllp_answer_undelivered", peer=peer, error=str(exc))


def _peer_name(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
