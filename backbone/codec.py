"""Avro single-object encoding with a schema store on disk instead of a registry server.

A message is `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer's schema
(parsing canonical form), then the Avro binary body. The reader looks the writer's schema up by
fingerprint among the current and released schemas in avro_schemas/ and resolves it to the
current version of the same name, so events written before a compatible change still decode.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, load_schema, parse_schema, to_parsing_canonical_form

from backbone.errors import BadInput, ConfigurationError

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
RELEASED_DIR = "released"

Schema = dict[str, Any]


def schema_fingerprint(schema: Schema) -> bytes:
    """The 8 bytes that follow the magic: CRC-64-AVRO of the parsing canonical form."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def plain_schema(schema: Schema) -> Schema:
    """The schema as standalone JSON, without fastavro's parse bookkeeping."""
    return {key: value for key, value in schema.items() if not key.startswith("__fastavro")}


@dataclass(frozen=True)
class WriterSchema:
    """A schema some writer used: its name, parsed form and whether it is the current one."""

    name: str
    parsed: Schema
    current: bool


class SchemaStore:
    """The current schemas in a folder (one `<full name>.avsc` per named type) and the
    released versions of the topic schemas under `released/` (`<full name>.v<N>.avsc`)."""

    def __init__(self, schemas_dir: Path) -> None:
        self.schemas_dir = schemas_dir
        self._current: dict[str, Schema] = {}
        self._writers: dict[bytes, WriterSchema] = {}
        if not schemas_dir.is_dir():
            raise ConfigurationError(f"schemas folder {schemas_dir} does not exist")
        for path in sorted(schemas_dir.glob("*.avsc")):
            self._add(path.stem, self.load_current(path.stem), current=True)
        for path in sorted((schemas_dir / RELEASED_DIR).glob("*.avsc")):
            name = path.name.rsplit(".v", 1)[0]
            released: Schema = parse_schema(json.loads(path.read_text("utf-8")))  # type: ignore[assignment]
            self._add(name, released, current=False)

    def load_current(self, name: str) -> Schema:
        """Parse `<name>.avsc`, resolving the named types it uses from sibling files."""
        path = self.schemas_dir / f"{name}.avsc"
        try:
            schema: Schema = load_schema(str(path))  # type: ignore[assignment]
        except Exception as exc:  # fastavro raises several unrelated types on bad schemas
            raise ConfigurationError(f"schema {path.name} is invalid: {exc}") from exc
        return schema

    def _add(self, name: str, parsed: Schema, *, current: bool) -> None:
        fp = schema_fingerprint(parsed)
        if current:
            self._current[name] = parsed
        self._writers.setdefault(fp, WriterSchema(name, parsed, current))

    def current(self, name: str) -> Schema:
        """The current version of a named schema."""
        try:
            return self._current[name]
        except KeyError:
            raise ConfigurationError(f"no schema named {name} in {self.schemas_dir}") from None

    def writer(self, fp: bytes) -> WriterSchema | None:
        """The schema a message was written with, by fingerprint."""
        return self._writers.get(fp)

    def released_versions(self, name: str) -> list[tuple[int, Path]]:
        """Released versions of a schema, oldest first."""
        found = []
        for path in (self.schemas_dir / RELEASED_DIR).glob(f"{name}.v*.avsc"):
            version = path.name.removeprefix(f"{name}.v").removesuffix(".avsc")
            if version.isdigit():
                found.append((int(version), path))
        return sorted(found)


@dataclass(frozen=True)
class Decoded:
    """A decoded message: the schema name and the record in the current version's shape."""

    schema_name: str
    record: dict[str, Any]


class AvroCodec:
    """Encodes records to single-object Avro and decodes them back."""

    def __init__(self, store: SchemaStore) -> None:
        self.store = store
        self._headers: dict[str, bytes] = {}

    def encode(self, schema_name: str, record: dict[str, Any]) -> bytes:
        """Encode `record` with the current version of `schema_name`."""
        schema = self.store.current(schema_name)
        header = self._headers.get(schema_name)
        if header is None:
            header = self._headers[schema_name] = MAGIC + schema_fingerprint(schema)
        out = io.BytesIO()
        out.write(header)
        try:
            fastavro.schemaless_writer(out, schema, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise BadInput(f"record does not fit schema {schema_name}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> Decoded:
        """Decode a single-object message; unknown or malformed input raises BadInput."""
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise BadInput("not Avro single-object encoded (no C3 01 marker)")
        writer = self.store.writer(data[2:HEADER_SIZE])
        if writer is None:
            raise BadInput(f"unknown writer schema fingerprint {data[2:HEADER_SIZE].hex()}")
        reader = None if writer.current else self.store.current(writer.name)
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(data[HEADER_SIZE:]), writer.parsed, reader
            )
        except Exception as exc:  # a truncated or corrupt body: fastavro raises many types
            raise BadInput(f"body does not decode as {writer.name}: {exc}") from exc
        if not isinstance(record, dict):
            raise BadInput(f"{writer.name} is not a record schema")
        return Decoded(writer.name, record)

    def decode_as(self, schema_name: str, data: bytes) -> dict[str, Any]:
        """Decode a message that must have been written with (a version of) `schema_name`."""
        decoded = self.decode(data)
        if decoded.schema_name != schema_name:
            raise BadInput(f"expected a {schema_name}, got a {decoded.schema_name}")
        return decoded.record

    def writer_name(self, data: bytes) -> str | None:
        """The name of the schema `data` was written with, read from its header alone (no
        decoding); None if it is not single-object encoded with a known schema."""
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            return None
        writer = self.store.writer(data[2:HEADER_SIZE])
        return None if writer is None else writer.name
