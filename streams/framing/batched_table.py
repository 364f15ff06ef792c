"""A table seen through one frame's writes, written back once per key when the frame is done.

Every write to a Faust table is a changelog message through Faust's producer (about 0.1 ms
here), so a frame that touches a key many times must write it once: reads see the frame's own
writes first, and `flush` writes each changed key (or deletes it) once. Kafka Streams' record
cache does the same coalescing. `flush` must run while the frame is the current event: Faust
writes a table's changelog on the partition of the event being processed.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

_DELETED = object()


class BatchedTable(MutableMapping[str, Any]):
    """A dict-like view of `table` whose writes wait for `flush`."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table
        self._pending: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self._pending.get(key, self)
        if value is self:
            return self.table[key]
        if value is _DELETED:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._pending.get(key, self)
        if value is self:
            # Faust tables answer `get` with one store read; `in` then `[]` would be two.
            return self.table.get(key, default)
        return default if value is _DELETED else value

    def __contains__(self, key: object) -> bool:
        value = self._pending.get(key, self)  # type: ignore[call-overload]
        if value is self:
            return key in self.table
        return value is not _DELETED

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
        for key, value in self._pending.items():
            if value is _DELETED:
                if key in self.table:
                    del self.table[key]  # a tombstone on the changelog
            else:
                self.table[key] = value
        written = len(self._pending)
        self._pending.clear()
        return written
