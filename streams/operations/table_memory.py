"""RocksDB's own memory under the worker's tables, on `/metrics`.

Faust opens one RocksDB per table partition. Their memtables and block caches are the part of
a worker's memory that grows with the data, up to the bounds `streams/app.py` sets, so
operators (and `backbone bench`) read them here rather than guess from the process's RSS.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import faust
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

TABLE_STORE_METRIC = "backbone_table_store_bytes"
PROPERTIES = {
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "block_cache": "rocksdb.block-cache-usage",
    "table_readers": "rocksdb.estimate-table-readers-mem",
}


class TableMemory(Collector):
    """Sums RocksDB's memory properties over every open table partition of one app."""

    app: faust.App | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One gauge, labelled by kind of memory."""
        gauge = GaugeMetricFamily(
            TABLE_STORE_METRIC,
            "Memory RocksDB holds for the worker's table partitions, by kind",
            labels=["kind"],
        )
        totals = dict.fromkeys(PROPERTIES, 0)
        for database in self._databases():
            for kind, name in PROPERTIES.items():
                totals[kind] += database.property_int_value(name) or 0
        for kind, total in totals.items():
            gauge.add_metric([kind], total)
        yield gauge

    def _databases(self) -> Iterator[Any]:
        if self.app is None:
            return
        for table in self.app.tables.values():
            # Faust keeps a store's open partitions private and has no accessor that does not
            # open a missing one; a memory store has none.
            yield from getattr(table.data, "_dbs", {}).values()


_collector = TableMemory()
REGISTRY.register(_collector)


def watch_table_memory(app: faust.App) -> None:
    """Report `app`'s table memory (one app per worker process; the last one wins)."""
    _collector.app = app
