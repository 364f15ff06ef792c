"""Avro single-object encoding, checked against the Apache Avro reference implementation."""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import avro.schema
import fastavro
import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from backbone.codec import MAGIC, AvroCodec, SchemaStore, schema_fingerprint
from backbone.contracts import EVENT_SCHEMAS, Agency
from backbone.errors import BadInput
from backbone.settings import REPO_ROOT

SCHEMAS = REPO_ROOT / "avro_schemas"
KEYED = "a" * 64


def social_care_record() -> dict[str, object]:
    moment = datetime(2026, 3, 1, 8, 15, 0, 123456, tzinfo=UTC)
    return {
        "envelope": {
            "event_id": "e-1",
            "event_type": "case_opened",
            "agency": "social_care",
            "source_system": "cms",
            "occurred_at": moment,
            "recorded_at": moment,
            "legal_basis": "public_task",
            "sensitivity": "special_category",
            "correlation_id": None,
            "subject": {
                "record_id": KEYED,
                "id_type": "case_person_id",
                "national_id": None,
                "family_name": "nowak",
                "given_name": "zofia",
                "birth_date": date(1990, 5, 17),
                "sex": None,
                "postcode": "LS61AA",
            },
            "initial_load": False,
        },
        "case_id": KEYED,
        "household": [],
        "details": {"source": "school"},
    }


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(SchemaStore(SCHEMAS))


def test_header_is_c3_01_and_the_reference_crc64_fingerprint(codec: AvroCodec) -> None:
    name = EVENT_SCHEMAS[Agency.SOCIAL_CARE]
    data = codec.encode(name, social_care_record())
    canonical = to_parsing_canonical_form(codec.store.current(name))
    assert data[:2] == MAGIC == b"\xc3\x01"
    # The Avro reference's CRC-64-AVRO over the parsing canonical form, little-endian.
    assert data[2:10] == avro.schema._crc_64_fingerprint(canonical.encode())
    # Canonical form strips logical types ([STRIP], [PRIMITIVES]), as Java's
    # SchemaNormalization does; the Python reference keeps {"type": "long"}, so its own
    # Schema.fingerprint() differs for schemas with logical types.
    assert '"name":"occurred_at","type":"long"' in canonical


def test_fingerprint_matches_the_reference_for_a_plain_schema() -> None:
    schema = {"type": "record", "name": "x.Plain", "fields": [{"name": "a", "type": "string"}]}
    reference = avro.schema.parse(json.dumps(schema)).fingerprint("CRC-64-AVRO")
    assert schema_fingerprint(parse_schema(schema)) == reference


def test_round_trip_keeps_every_field(codec: AvroCodec) -> None:
    record = social_care_record()
    decoded = codec.decode(codec.encode(EVENT_SCHEMAS[Agency.SOCIAL_CARE], record))
    assert decoded.schema_name == "backbone.socialcare.SocialCareEvent"
    assert decoded.record == record


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{}", "no C3 01 marker"),
        (MAGIC + b"\x00" * 8 + b"\x02", "unknown writer schema fingerprint"),
    ],
)
def test_undecodable_input_is_bad_input_with_the_reason(
    codec: AvroCodec, data: bytes, reason: str
) -> None:
    with pytest.raises(BadInput, match=reason):
        codec.decode(data)


def test_a_truncated_body_is_bad_input(codec: AvroCodec) -> None:
    data = codec.encode(EVENT_SCHEMAS[Agency.SOCIAL_CARE], social_care_record())
    with pytest.raises(BadInput, match="does not decode"):
        codec.decode(data[:40])


def test_a_record_that_does_not_fit_the_schema_is_bad_input(codec: AvroCodec) -> None:
    record = social_care_record()
    record["case_id"] = 42
    with pytest.raises(BadInput, match="does not fit schema"):
        codec.encode(EVENT_SCHEMAS[Agency.SOCIAL_CARE], record)


def test_events_written_with_a_released_version_decode_into_the_current_shape(
    tmp_path: Path,
) -> None:
    """After a compatible change (a new field with a default), old events still decode."""
    schemas = tmp_path / "avro_schemas"
    shutil.copytree(SCHEMAS, schemas)
    old_codec = AvroCodec(SchemaStore(schemas))
    old_event = old_codec.encode(EVENT_SCHEMAS[Agency.SOCIAL_CARE], social_care_record())

    path = schemas / "backbone.socialcare.SocialCareEvent.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "team", "type": ["null", "string"], "default": None})
    path.write_text(json.dumps(schema))
    decoded = AvroCodec(SchemaStore(schemas)).decode(old_event)

    assert decoded.record["team"] is None
    assert decoded.record["details"] == {"source": "school"}


def test_an_event_written_before_initial_loads_were_marked_is_not_one(codec: AvroCodec) -> None:
    name = EVENT_SCHEMAS[Agency.SOCIAL_CARE]
    v1 = parse_schema(json.loads((SCHEMAS / "released" / f"{name}.v1.avsc").read_text()))
    written = io.BytesIO()
    written.write(MAGIC + schema_fingerprint(v1))
    fastavro.schemaless_writer(written, v1, social_care_record())

    assert codec.decode(written.getvalue()).record["envelope"]["initial_load"] is False
