"""Every table of the worker gets bounded RocksDB memory, and /metrics reports what it holds.

Faust's defaults (64 MiB memtables, three of them, and a 2 GiB block cache per table partition)
let a worker's memory grow with the events it processed; `bench` shows the bounded curve.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from streams.app import create_app
from streams.operations.table_memory import TABLE_STORE_METRIC
from streams.settings import WorkerSettings

MIB = 1024 * 1024


def test_every_table_store_opens_with_the_configured_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for team in ("HEALTH", "SOCIAL_CARE", "HOUSING"):  # deploy/notifications/routing.yaml
        monkeypatch.setenv(f"BACKBONE_NOTIFY_SECRET_{team}", secrets.token_hex(16))
    settings = WorkerSettings(
        token_secret=secrets.token_hex(16),
        pseudonym_key=secrets.token_hex(32),
        data_dir=tmp_path,
        worker_table_write_buffer_mib=2,
        worker_table_cache_mib=3,
    )
    app = create_app(settings)

    assert len(app.tables) >= 16
    for table in app.tables.values():
        options = table.data.rocksdb_options  # the store a partition's RocksDB opens with
        assert (options.write_buffer_size, options.max_write_buffer_number) == (2 * MIB, 2)
        assert options.block_cache_size == 3 * MIB
    # Nothing is open before partitions are assigned; the gauge reports zeros, not an error.
    kinds = {
        sample.labels["kind"]: sample.value
        for family in REGISTRY.collect()
        if family.name == TABLE_STORE_METRIC
        for sample in family.samples
    }
    assert kinds == {"memtables": 0, "block_cache": 0, "table_readers": 0}
