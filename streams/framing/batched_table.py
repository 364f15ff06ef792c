"""A table seen through one frame's writes, written back once per key when the frame is done.

Every write to a Faust table is a changelog message through Faust's producer (about 0.1 ms
here), so a frame that touches a key many times must write it once: reads see the frame's own
writes first, and `flush` writes each changed key (or deletes it) once. Kafka Streams' record
cache does the same coalescing. `flush` must run while the frame is the current event: a
table's changelog is written on the partition of the event being processed. In the worker the
writes go through a `TableChangelog` (librdkafka), not Faust's producer.

Reads are cached too (absent keys included): a Faust table read is a RocksDB lookup and a JSON
decode, tens of microseconds, and the resolver reads the same records and parents again and
again. The cache is right only while this view is the table's one writer in the process and
the partitions stay put, so the worker calls `forget` whenever partitions are assigned (a
recovery writes the store behind its back). It is bounded, and emptied when full.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, MutableMapping
from typing import Any, ClassVar, cast

from faust import current_event
from faust.tables.base import Collection

from streams.framing.changelog import TableChangelog

_DELETED = object()
CACHED_KEYS = 20_000


class BatchedTable(MutableMapping[str, Any]):
    """A dict-like view of `table` whose writes wait for `flush`, with its reads cached."""

    # Every view, by identity (a mapping is unhashable), for `forget_all`.
    _views: ClassVar[weakref.WeakValueDictionary[int, BatchedTable]] = weakref.WeakValueDictionary()

    def __init__(
        self,
        table: MutableMapping[str, Any],
        changelog: TableChangelog | None = None,
        cached_keys: int = CACHED_KEYS,
    ) -> None:
        BatchedTable._views[id(self)] = self
        self.table = table
        self._changelog = changelog
        self._pending: dict[str, Any] = {}
        self._cache: dict[str, Any] = {}  # key -> value as stored, or _DELETED if absent
        self._cached_keys = cached_keys

    def _stored(self, key: str) -> Any:
        value = self._pending.get(key, self)
        if value is not self:
            return value
        value = self._cache.get(key, self)
        if value is self:
            # Faust tables answer `get` with one store read; `in` then `[]` would be two.
            value = self.table.get(key, _DELETED)
            self._remember(key, value)
        return value

    def _remember(self, key: str, value: Any) -> None:
        if len(self._cache) >= self._cached_keys:
            self._cache.clear()
        self._cache[key] = value

    def __getitem__(self, key: str) -> Any:
        value = self._stored(key)
        if value is _DELETED:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._stored(key)
        return default if value is _DELETED else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._stored(key) is not _DELETED

    def __setitem__(self, key: str, value: Any) -> None:
        self._pending[key] = value

    def __delitem__(self, key: str) -> None:
        self._pending[key] = _DELETED

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for key, value in self._pending.items():
            seen.add(key)
            if value is not _DELETED:
                yield key
        yield from (key for key in self.table if key not in seen)

    def items(self) -> Any:
        """The table's own items when nothing waits: a store scan, not one read per key."""
        return self.table.items() if not self._pending else super().items()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def flush(self) -> int:
        """Write every changed key to the table once; returns how many were written."""
        changes = [
            (key, None if value is _DELETED else value)
            for key, value in self._pending.items()
            # Deleting an absent key would put a needless tombstone on the changelog.
            if value is not _DELETED or self._may_hold(key)
        ]
        if self._changelog is None:
            for key, value in changes:
                if value is None:
                    del self.table[key]
                else:
                    self.table[key] = value
        else:
            event = current_event()
            assert event is not None, "a table is written while its frame is the current event"  # nosec B101 # the invariant its message states
            self._changelog.write(cast(Collection, self.table), event.message.partition, changes)
        for key, value in self._pending.items():
            self._remember(key, value)
        written = len(self._pending)
        self._pending.clear()
        return written

    def _may_hold(self, key: str) -> bool:
        return self._cache.get(key, self) is not _DELETED and key in self.table

    def forget(self) -> None:
        """Drop the read cache: the store may have changed behind this view (a recovery)."""
        self._cache.clear()

    @classmethod
    def forget_all(cls) -> None:
        """Drop every view's read cache (on every partition assignment)."""
        for view in list(cls._views.values()):
            view.forget()
