"""Schema evolution gate: every topic schema must read what its last release wrote.

Backward compatibility (reader = current, writer = latest release) is what lets a consumer
upgraded first keep decoding the events already on the topics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from backbone.codec import RELEASED_DIR, SchemaStore, plain_schema, schema_fingerprint
from backbone.contracts import TOPIC_SCHEMAS


@dataclass(frozen=True)
class SchemaReport:
    """The verdict for one topic schema against its latest release."""

    name: str
    released_version: int | None
    changed: bool
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def backward_incompatibility(reader_json: str, writer_json: str) -> str | None:
    """Why a reader of `reader_json` cannot read data written with `writer_json`, or None."""
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(
        avro.schema.parse(reader_json), avro.schema.parse(writer_json)
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    return "; ".join(
        f"{message} at {'/'.join(result.locations)}" for message in result.messages
    ) or str(result.incompatibilities)


def check_schemas(store: SchemaStore, names: tuple[str, ...] = TOPIC_SCHEMAS) -> list[SchemaReport]:
    """Check each topic schema against the newest released version of itself."""
    reports = []
    for name in names:
        current = store.current(name)
        versions = store.released_versions(name)
        if not versions:
            reports.append(SchemaReport(name, None, True, "never released"))
            continue
        version, path = versions[-1]
        released_json = path.read_text("utf-8")
        released = json.loads(released_json)
        changed = schema_fingerprint(current) != schema_fingerprint(released)
        problem = backward_incompatibility(json.dumps(plain_schema(current)), released_json)
        reports.append(SchemaReport(name, version, changed, problem))
    return reports


def release_schemas(store: SchemaStore, names: tuple[str, ...] = TOPIC_SCHEMAS) -> list[Path]:
    """Snapshot every changed, compatible topic schema as its next released version."""
    written = []
    for report in check_schemas(store, names):
        if report.problem not in (None, "never released") or not report.changed:
            continue
        version = (report.released_version or 0) + 1
        path = store.schemas_dir / RELEASED_DIR / f"{report.name}.v{version}.avsc"
        path.write_text(json.dumps(plain_schema(store.current(report.name)), indent=1) + "\n")
        written.append(path)
    return written
