"""MLLP: HL7 messages framed on a TCP stream, and the asyncio server that answers them.

A frame is 0x0B, the message, 0x1C 0x0D. One connection carries many frames; a TCP read may
hold several frames or part of one. Answers go back in the order the messages came, one per
message, even when a sender pipelines (sends before the previous answer arrived).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from backbone.logging import get_logger

log = get_logger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
READ_SIZE = 64 * 1024
_MARKS = re.compile(re.escape(START_BLOCK) + b"|" + re.escape(END_BLOCK))


def frame(payload: bytes) -> bytes:
    """`payload` wrapped in MLLP's start and end blocks."""
    return START_BLOCK + payload + END_BLOCK


class FramingProblem(StrEnum):
    """Why bytes read from a connection are not one well-framed message."""

    OVERSIZE = "message is larger than the configured limit"
    NOT_ENDED = "message has no end block: a new start block came before it"
    NO_START = "bytes outside a frame: no start block before them"


@dataclass(frozen=True)
class Frame:
    """One received message, or stray bytes (`problem`); at most `max_bytes` of it are kept."""

    payload: bytes
    peer: str
    problem: FramingProblem | None = None


class FrameDecoder:
    """Cuts a byte stream into frames, whatever the TCP reads look like.

    Memory stays bounded whatever arrives: of a frame (or of stray bytes between frames) only
    the first `max_bytes` are kept and the rest skipped up to its end. A start block inside a
    frame ends it as NOT_ENDED and starts the next one, so a sender that lost an end block
    loses only that message. Stray bytes other than whitespace come out as NO_START; blank
    ones (CR, LF between frames) are dropped.
    """

    def __init__(self, max_bytes: int, peer: str) -> None:
        self._max = max_bytes
        self._peer = peer
        self._kept = bytearray()  # the first bytes of the frame or stray bytes being read
        self._size = 0  # how many bytes it has so far, kept or not
        self._in_frame = False
        self._carry = b""  # a last byte that may be the first half of an end block

    def feed(self, data: bytes) -> list[Frame]:
        """The frames and stray bytes completed by `data` (possibly none)."""
        data = self._carry + data
        self._carry = data[-1:] if data.endswith(END_BLOCK[:1]) else b""
        usable = len(data) - len(self._carry)
        found: list[Frame] = []
        position = 0
        for mark in _MARKS.finditer(data, 0, usable):
            self._keep(data[position : mark.start()])
            ended = mark.group() == END_BLOCK
            finished = self._finish(ended=ended)
            if finished is not None:
                found.append(finished)
            self._in_frame = not ended
            position = mark.end()
        self._keep(data[position:usable])
        return found

    def _keep(self, chunk: bytes) -> None:
        room = self._max - len(self._kept)
        if room > 0:
            self._kept += chunk[:room]
        self._size += len(chunk)

    def _finish(self, *, ended: bool) -> Frame | None:
        """What was read since the last mark, now that a start or end block came."""
        payload, size = bytes(self._kept), self._size
        self._kept.clear()
        self._size = 0
        if not self._in_frame:
            blank = not payload.strip()
            return None if blank else Frame(payload, self._peer, FramingProblem.NO_START)
        if not ended:
            return Frame(payload, self._peer, FramingProblem.NOT_ENDED)
        problem = FramingProblem.OVERSIZE if size > self._max else None
        return Frame(payload, self._peer, problem)


# The answer to send back, or None for stray bytes that no sender waits for an answer to.
Handler = Callable[[Frame], Coroutine[Any, Any, bytes | None]]
Answers = asyncio.Queue[asyncio.Task[bytes | None] | None]


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
        answers: Answers = asyncio.Queue(self._max_in_flight)
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


async def _reply_in_order(answers: Answers, writer: asyncio.StreamWriter, peer: str) -> None:
    """Send each answer when it is ready, in the order the messages arrived."""
    connected = True
    while (pending := await answers.get()) is not None:
        answer = await pending
        if answer is None or not connected:
            continue  # nothing to answer, or the sender went away (it resends what it missed)
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
