"""Many publishes in flight at once, bounded, with the first failure remembered.

Awaiting each Kafka acknowledgement in turn caps a connector at one round trip per event; a
million-row snapshot needs thousands in flight. The window admits a new publish only when a
slot is free, so memory stays bounded, and `drain` returns once every one was acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class PublishWindow:
    """Runs up to `size` publishes concurrently; `drain` raises the first failure."""

    def __init__(self, size: int) -> None:
        self._slots = asyncio.Semaphore(size)
        self._pending: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    async def submit(self, publish: Coroutine[Any, Any, None]) -> None:
        """Start `publish` once a slot is free; raises an earlier publish's failure."""
        self._raise_failure(publish)
        await self._slots.acquire()
        self._raise_failure(publish)
        task = asyncio.ensure_future(publish)
        self._pending.add(task)
        task.add_done_callback(self._settled)

    def _raise_failure(self, publish: Coroutine[Any, Any, None]) -> None:
        if self._failure is not None:
            publish.close()
            raise self._failure

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def drain(self) -> None:
        """Wait until every publish settled; raise the first failure, if any."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._failure is not None:
            raise self._failure

    async def cancel(self) -> None:
        """Abandon what is in flight (the input will be read again)."""
        for task in self._pending:
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
