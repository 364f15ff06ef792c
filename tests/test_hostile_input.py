"""Hostile and broken input, property-based: each connector's parser and the event models take
whatever arrives and answer with a value or BadInput naming the problem, never another
exception; what they keep stays within the configured limits; the stream goes on.

The pure parsers are fuzzed in-process with hypothesis (profiles in conftest.py: `ci` by
default, `nightly` with HYPOTHESIS_PROFILE=nightly, as `make fuzz` does). Every event a parser
accepts must encode and decode back as the same event: a worker can read what is published.
That bad input then reaches the dead-letter topic with its reason, and the next good input is
still published, is shown through the real broker in each connector's own test module.

Each `@example` is input that once broke a connector (see the README, "Hostile input").
"""

from __future__ import annotations

import copy
import json
import tempfile
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import hl7
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as outcome
from hypothesis import strategies as st

from backbone.codec import HEADER_SIZE, AvroCodec, SchemaStore
from backbone.contracts import EVENT_SCHEMAS, Agency
from backbone.errors import BadInput
from backbone.events import (
    AgencyEvent,
    HealthEvent,
    HousingEvent,
    JobcentreEvent,
    SocialCareEvent,
    Subject,
    validate_event,
)
from backbone.pseudonyms import Pseudonymiser
from backbone.settings import REPO_ROOT
from connectors.hl7_mllp.ack import AckCode, Inbound, acknowledgement
from connectors.hl7_mllp.mapping import MappingRules
from connectors.hl7_mllp.mapping import to_event as health_event
from connectors.hl7_mllp.message import Hl7Message
from connectors.hl7_mllp.mllp import END_BLOCK, START_BLOCK, FrameDecoder, FramingProblem
from connectors.housing_csv.diff import changes
from connectors.housing_csv.mapping import state_of
from connectors.housing_csv.mapping import to_event as housing_event
from connectors.housing_csv.snapshot_csv import COLUMNS, parse_row, read_snapshot
from connectors.jobcentre_cdc.changes import Change, Kind
from connectors.jobcentre_cdc.mapping import EventBuilder, JobseekerRow, jobseeker_key
from connectors.jobcentre_cdc.mapping import parse_row as parse_cdc_row
from connectors.jobcentre_cdc.mapping import subject_of as jobseeker_subject
from connectors.jobcentre_cdc.tables import REFERENCE_COLUMNS, Table
from connectors.runtime.runtime import MAX_RECORD_BYTES
from connectors.social_care_webhook.mapping import parse_body
from connectors.social_care_webhook.mapping import to_event as social_care_event

CODEC = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
PSEUDONYMS = Pseudonymiser(b"hostile-input-test-key")
# Generated inputs grow large (huge fields, long streams); hypothesis' own size checks would
# stop the run rather than the connector.
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def readable_back(event: AgencyEvent) -> None:
    """The event encodes within Kafka's limit and decodes to the same event."""
    outcome("accepted")
    value = CODEC.encode(event.schema_name(), event.to_avro())
    assert len(value) <= MAX_RECORD_BYTES
    assert validate_event(type(event), CODEC.decode(value).record) == event


def named(problem: BadInput) -> BadInput:
    """A problem that names what is wrong, briefly enough for an ACK or an HTTP answer."""
    assert problem.field, problem
    assert len(str(problem)) < 1000, str(problem)[:200]
    outcome(f"refused: {problem.field}")
    return problem


text_with_delimiters = st.text(
    st.characters(codec="utf-8") | st.sampled_from("|^~\\&\r\n\"',"), max_size=24
)

# HL7 v2 -----------------------------------------------------------------------------------
ADT = [
    "MSH|^~\\&|PAS|RBH|BACKBONE|COUNTY|20260301101500+0000||ADT^A01^ADT_A01|MSG1|P|2.5",
    "EVN|A01|20260301101500+0000|||USER1|20260301101500+0000",
    "PID|1||H1^^^RBH^MR~QQ123456C^^^NHS^NI||Doe^Jane||19840229|F|||1 High St^^Leeds^^LS6 1AA",
    "MRG|H0^^^RBH^MR",
    "PV1|1|I||EL" + "|" * 40 + "20260301100000+0000|20260302100000+0000",
]
HL7_RULES = MappingRules(PSEUDONYMS, "hospital-pas", ZoneInfo("Europe/London"))


@st.composite
def broken_adt(draw: st.DrawFn) -> bytes:
    """A good ADT message broken in a few places: fields, segments, delimiters, sizes."""
    segments = [segment.split("|") for segment in ADT]
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, len(segments) - 1))
        fields = segments[index]
        change = draw(st.sampled_from(["field", "drop", "repeat", "delimiters", "huge", "noise"]))
        if change == "drop" and len(segments) > 1:
            segments.pop(index)
        elif change == "repeat":
            segments.insert(index, list(fields))
        elif change == "delimiters":
            segments[0][1] = draw(st.text(max_size=6))
        else:
            position = draw(st.integers(0, len(fields) + 2))
            fields.extend([""] * (position + 1 - len(fields)))
            if change == "field":
                fields[position] = draw(text_with_delimiters)
            elif change == "huge":
                fields[position] = draw(st.sampled_from("9X^~")) * draw(st.integers(1, 20_000))
            else:
                fields[position] = draw(st.binary(max_size=16)).decode("latin-1")
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    return "\r".join("|".join(fields) for fields in segments).encode(encoding, "replace")


@FUZZ
@given(
    st.one_of(
        broken_adt(),
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda noise: b"MSH" + noise),
    )
)
@example(b"MSH|999\rPID|1").via("python-hl7 failed on an assertion: MSH-2 repeats MSH-1")
@example(b"MSH|\rPID").via("python-hl7 failed on an assertion: no encoding characters")
@example(b"MSH|^^~\\&|PAS").via("MSH-2 repeats a delimiter")
@example("\r".join([*ADT[:2], ADT[2].replace("|F|", "|" + "X" * 100_000 + "|")]).encode()).via(
    "a huge PID-8 made a 100 kB reason, quoted in the ACK and the dead letter's header"
)
@example("\r".join([ADT[0].replace("ADT^A01", "9" * 5000), *ADT[1:]]).encode()).via(
    "found by the nightly run: a huge MSH-9 was quoted whole in the reason"
)
def test_any_hl7_message_is_an_event_or_an_ae_naming_the_field(raw: bytes) -> None:
    message: Hl7Message | None = None
    try:
        message = Hl7Message.parse(raw, "utf-8")
        event = health_event(message, HL7_RULES)
    except BadInput as problem:
        answer = acknowledgement(AckCode.ERROR, Inbound.of(message), "BACKBONE", named(problem))
        ack = hl7.parse(answer.decode())
        assert str(ack.segment("MSA")(1)) == "AE"
        return
    assert isinstance(event, HealthEvent)
    readable_back(event)


# MLLP framing -----------------------------------------------------------------------------
MAX_FRAME = 64
content = st.binary(max_size=MAX_FRAME).map(
    lambda data: data.replace(START_BLOCK, b".").replace(END_BLOCK[:1], b".")
)
good_frame = content.map(lambda data: ("good", START_BLOCK + data + END_BLOCK))
broken_piece = st.one_of(
    content.map(lambda data: ("no end", START_BLOCK + data)),
    content.map(lambda data: ("no start", data + END_BLOCK)),
    st.binary(max_size=2 * MAX_FRAME).map(lambda data: ("garbage", data)),
    st.integers(MAX_FRAME + 1, 4 * MAX_FRAME).map(
        lambda size: ("oversize", START_BLOCK + b"x" * size + END_BLOCK)
    ),
    st.sampled_from([b"\r\n", b"\n", b" "]).map(lambda blank: ("blank", blank)),
)


def decode_stream(reads: list[bytes]) -> list[Any]:
    decoder = FrameDecoder(MAX_FRAME, "peer")
    return [frame for data in reads for frame in decoder.feed(data)]


@FUZZ
@given(
    st.lists(st.one_of(good_frame, broken_piece), max_size=12),
    st.lists(st.integers(1, 4096), max_size=8),
)
@example(
    [("garbage", b"z" * (3 * MAX_FRAME)), ("good", START_BLOCK + b"MSH|ok" + END_BLOCK)],
    [100],
).via("a good frame after more than max bytes of garbage was lost with it")
@example(
    [("no end", START_BLOCK + b"MSH|lost"), ("good", START_BLOCK + b"MSH|ok" + END_BLOCK)],
    [3],
).via("a frame without its end block swallowed the good frame after it")
def test_mllp_frames_are_cut_from_any_stream_and_good_frames_survive_bad_ones(
    pieces: list[tuple[str, bytes]], read_ends: list[int]
) -> None:
    stream = b"".join(piece for _kind, piece in pieces)
    cuts = sorted({end % len(stream) for end in read_ends if stream} - {0})
    reads = [stream[start:end] for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True)]

    frames = decode_stream(reads)

    # However the stream arrives, it is cut the same way.
    assert frames == decode_stream([stream])
    assert all(len(frame.payload) <= MAX_FRAME for frame in frames)
    # Only what a sender framed gets an answer; each good frame gets one, intact and in order.
    answered = [frame for frame in frames if frame.problem is not FramingProblem.NO_START]
    assert len(answered) <= stream.count(START_BLOCK)
    intact = iter(frame.payload for frame in answered if frame.problem is None)
    goods = [piece[1:-2] for kind, piece in pieces if kind == "good"]
    assert all(any(payload == good for payload in intact) for good in goods)


# Housing CSV ------------------------------------------------------------------------------
MAX_ROW_CHARS = 2048
NIGHT = date(2026, 11, 1)


def tenancy_row(ref: str) -> list[str]:
    return [
        NIGHT.isoformat(),
        f"T-{ref}",
        f"P-{ref}",
        "QQ123456C",
        "Nowak",
        "Zofia",
        "1990-05-17",
        "1 High Street",
        "LS6 1AA",
        "active",
        "812.50",
        "9",
        "none",
        "open",
        "3",
    ]


def csv_line(fields: list[str]) -> bytes:
    return (",".join(f'"{field}"' for field in fields) + "\n").encode()


@st.composite
def broken_row(draw: st.DrawFn) -> bytes:
    """A tenancy row broken one way: a value, the columns, the quoting, the bytes, its size."""
    fields = tenancy_row(uuid.uuid4().hex[:8])
    column = draw(st.integers(0, len(COLUMNS) - 1))
    kind = draw(st.sampled_from(["value", "columns", "open quote", "not utf-8", "huge", "numbers"]))
    if kind == "value":
        fields[column] = draw(text_with_delimiters).replace('"', '""')
    elif kind == "columns":
        fields = fields[: draw(st.integers(0, 20))] + ["x"] * draw(st.integers(0, 3))
    elif kind == "numbers":
        fields[draw(st.sampled_from([10, 11, 14]))] = draw(
            st.sampled_from(["1e999999999", "sNaN", "-inf", "1e5000", "9" * 30, "1_0", "١٢"])
        )
    elif kind == "huge":
        fields[column] = "x" * draw(st.integers(MAX_ROW_CHARS // 2, 3 * MAX_ROW_CHARS))
    line = csv_line(fields)
    if kind == "open quote":
        at = draw(st.integers(0, len(line) - 2))
        line = line[:at] + b'"' + line[at:]
    elif kind == "not utf-8":
        at = draw(st.integers(0, len(line) - 2))
        line = line[:at] + draw(st.binary(min_size=1, max_size=4)) + line[at:]
    return line


def housing_events(fields: list[str]) -> list[HousingEvent]:
    state = state_of(parse_row(fields), PSEUDONYMS)
    return [
        housing_event(state, found, "tenancies_20261101.csv", "hms", initial_load=False)
        for found in changes(None, state, [4, 8])
    ]


@FUZZ
@given(st.lists(broken_row() | st.just(csv_line(tenancy_row("good"))), max_size=8))
@example([csv_line(tenancy_row("x")).replace(b'"812.50"', b'"1e999999999"')]).via(
    "decimal.Overflow escaped the amount parser and the file was deferred forever"
)
@example([csv_line(tenancy_row("x")).replace(b'"812.50"', b'"sNaN"')]).via(
    "decimal.InvalidOperation escaped the amount parser"
)
@example([csv_line(tenancy_row("x")).replace(b'"3"\n', b'"99999999999"\n')]).via(
    "a household size over Avro's int was encoded as it was"
)
@example([b'"' + csv_line(tenancy_row("x"))]).via(
    "an unbalanced quote made every row after it part of one field"
)
@example([csv_line(tenancy_row("x" * 200_000))]).via(
    "csv.Error (field larger than field limit) escaped and the file was deferred forever"
)
def test_any_snapshot_row_is_events_or_a_dead_letter_naming_the_column(
    rows: list[bytes],
) -> None:
    last = csv_line(tenancy_row("last"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tenancies_20261101.csv"
        path.write_bytes(csv_line(list(COLUMNS)) + b"".join(rows) + last)
        published: list[HousingEvent] = []
        for row in read_snapshot(path, MAX_ROW_CHARS):
            assert len(row.raw) <= MAX_ROW_CHARS + 1
            try:
                if row.problem is not None:
                    raise row.problem
                published += housing_events(row.fields)
            except BadInput as problem:
                assert named(problem).field in {*COLUMNS, "row"}

    for event in published:
        readable_back(event)
    # The stream goes on: the good row after the broken ones is published.
    last_ref = PSEUDONYMS.record_id("housing", "tenancy_ref", "T-last")
    assert any(event.tenancy.tenancy_ref == last_ref for event in published)


# Jobcentre CDC ----------------------------------------------------------------------------
TABLES = {
    name: Table(name, "public", name, {c: c for c in cols})
    for name, cols in REFERENCE_COLUMNS.items()
}
GOOD_VALUES: dict[str, Any] = {
    "id": 7,
    "jobseeker_id": 1001,
    "national_id": "QQ123456C",
    "family_name": "Nowak",
    "given_name": "Zofia",
    "birth_date": "1990-05-17",
    "postcode": "LS6 1AA",
    "updated_at": "2026-11-01 09:30:00.5+00",
    "created_at": "2026-11-01 09:30:00+00",
    "benefit_type": "universal_credit",
    "status": "awarded",
    "started_on": "2026-10-01",
    "ended_on": None,
    "reason": "missed appointment",
    "starts_on": "2026-10-01",
    "ends_on": "2026-12-01",
    "reduction_pct": 20,
    "scheduled_at": "2026-10-30 10:00:00+00",
    "attended": False,
}
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["", "²", "9" * 25, "0001-01-01 00:00:00+14", "9999-12-31 23:00:00-14"]),
    st.dates().map(date.isoformat),
    st.datetimes(timezones=st.just(UTC)).map(str),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@st.composite
def cdc_row(draw: st.DrawFn, table: str) -> dict[str, Any]:
    """A row of `table` with some columns missing, of the wrong type, or null."""
    row = {column: GOOD_VALUES[column] for column in REFERENCE_COLUMNS[table]}
    for column in draw(st.lists(st.sampled_from(REFERENCE_COLUMNS[table]), max_size=3)):
        if draw(st.booleans()):
            row[column] = draw(json_value)
        else:
            row.pop(column, None)
    return row


@st.composite
def cdc_change(draw: st.DrawFn) -> Change:
    table = draw(st.sampled_from(sorted(TABLES)))
    old = draw(st.none() | cdc_row(table))
    return Change(
        draw(st.sampled_from(Kind)),
        TABLES[table],
        "0/16B3748",
        datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
        draw(cdc_row(table)),
        old,
        b"{}",
    )


SUBJECT = Subject(record_id="a" * 64, id_type="jobseeker_id")
BUILDER = EventBuilder(PSEUDONYMS, "jobcentre-cms")


def inserted(table: str, **values: Any) -> Change:
    row = {column: GOOD_VALUES[column] for column in REFERENCE_COLUMNS[table]} | values
    return Change(Kind.INSERT, TABLES[table], "0/1", datetime.now(UTC), row, None, b"")


@FUZZ
@given(cdc_change())
@example(inserted("appointments", scheduled_at="0001-01-01 00:00:00+14")).via(
    "an appointment in year 1 at +14:00 made an event Avro could not encode: OverflowError "
    "stopped the connector, and again at every restart"
)
@example(
    Change(
        Kind.INSERT, TABLES["sanctions"], "0/1", datetime.now(UTC), {"jobseeker_id": "²"}, None, b""
    )
).via("jobseeker_key took '²' for a digit and int() failed")
def test_any_cdc_row_is_events_or_a_dead_letter_naming_table_and_column(change: Change) -> None:
    key = jobseeker_key(change)
    assert key is None or isinstance(key, int)
    try:
        if change.table.reference == "jobseekers":
            jobseeker = parse_cdc_row("jobseekers", change.row)
            assert isinstance(jobseeker, JobseekerRow)
            jobseeker_subject(jobseeker, PSEUDONYMS)
        events = BUILDER.events(change, SUBJECT)
    except BadInput as problem:
        table, _, column = named(problem).field.partition(".")  # type: ignore[union-attr]
        assert table == change.table.reference and column
        return
    assert all(isinstance(event, JobcentreEvent) for event in events)
    for event in events:
        readable_back(event)


# Social care webhook ----------------------------------------------------------------------
def webhook_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "safeguarding_concern",
        "occurred_at": "2026-10-31T09:30:00+00:00",
        "case_id": "CASE-1",
        "person": {
            "case_person_id": "CP-1",
            "family_name": "Nowak",
            "given_name": "Zofia",
            "birth_date": "2015-05-17",
            "postcode": "LS6 1AA",
        },
        "household": [
            {
                "case_person_id": "CP-2",
                "family_name": "Nowak",
                "given_name": "Anna",
                "birth_date": "1985-02-01",
                "relationship": "parent",
            }
        ],
        "details": {"raised_by": "school"},
    }
    return body | changes


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """`document` with some values replaced, removed or added at any depth."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(0, 3))):
        target: Any = document
        while isinstance(target, dict | list) and target and draw(st.booleans()):
            keys = list(target) if isinstance(target, dict) else range(len(target))
            key = draw(st.sampled_from(keys))
            if not isinstance(target[key], dict | list):
                break
            target = target[key]
        if isinstance(target, dict):
            key = draw(st.sampled_from([*target, "extra"]))
            if draw(st.booleans()):
                target[key] = draw(json_value)
            else:
                target.pop(key, None)
    return document


@FUZZ
@given(
    st.one_of(
        mutated(webhook_body()).map(lambda body: json.dumps(body).encode()),
        json_value.map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=100),
    )
)
@example(b"[" * 100_000).via("RecursionError from json.loads: 500, nothing dead-lettered")
@example(b'{"a": ' + b"1" * 5000 + b"}").via("ValueError (integer digits limit) escaped: 500")
@example(json.dumps(webhook_body(case_id="CASE-\ud800")).encode()).via(
    "a lone surrogate from a \\u escape is not text"
)
@example(json.dumps(webhook_body(occurred_at="0001-01-01T00:00:00+14:00")).encode()).via(
    "a time in year 1 at +14:00 failed Avro encoding with OverflowError: 500"
)
def test_any_webhook_body_is_an_event_or_a_400_naming_the_field(raw: bytes) -> None:
    try:
        event = social_care_event(parse_body(raw), PSEUDONYMS, "social-care-cms", "key-1")
    except BadInput as problem:
        reason = named(problem)
        # The reason travels as a Kafka header and in the JSON answer.
        reason.field.encode()  # type: ignore[union-attr]
        return
    assert isinstance(event, SocialCareEvent)
    readable_back(event)


# Event models and the Avro codec ----------------------------------------------------------
def one_event_of_each_family() -> list[AgencyEvent]:
    body = parse_body(json.dumps(webhook_body()).encode())
    return [
        social_care_event(body, PSEUDONYMS, "social-care-cms", "key-1"),
        health_event(Hl7Message.parse("\r".join(ADT).encode(), "utf-8"), HL7_RULES),
        *housing_events(tenancy_row("x")),
        *BUILDER.events(inserted("sanctions"), SUBJECT),
    ]


ENCODED = [CODEC.encode(e.schema_name(), e.to_avro()) for e in one_event_of_each_family()]
FINGERPRINTS = [value[:HEADER_SIZE] for value in ENCODED]
RECORDS = [(CODEC.decode(value).schema_name, CODEC.decode(value).record) for value in ENCODED]
MODELS: dict[str, type[AgencyEvent]] = {
    EVENT_SCHEMAS[model.agency]: model
    for model in (HealthEvent, JobcentreEvent, HousingEvent, SocialCareEvent)
}


@st.composite
def damaged_event(draw: st.DrawFn) -> bytes:
    """A real encoded event truncated, extended or with bytes overwritten."""
    value = bytearray(draw(st.sampled_from(ENCODED)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(HEADER_SIZE, len(value) - 1))
        value[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(HEADER_SIZE, len(value)))
    return bytes(value[:cut]) + draw(st.binary(max_size=8))


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(lambda head, body: head + body, st.sampled_from(FINGERPRINTS), st.binary()),
        damaged_event(),
    )
)
@example(FINGERPRINTS[0] + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
def test_any_bytes_decode_to_a_valid_event_or_bad_input(data: bytes) -> None:
    try:
        decoded = CODEC.decode(data)
        model = MODELS.get(decoded.schema_name)
        if model is not None:
            validate_event(model, decoded.record)
    except BadInput as problem:
        assert str(problem)
        outcome("refused")
        return
    outcome("decoded")


def changed_record(schema: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    """The first record of `schema` with top-level `changes` (`envelope` merged)."""
    record = copy.deepcopy(next(record for name, record in RECORDS if name == schema))
    record["envelope"] |= changes.pop("envelope", {})
    return schema, record | changes


@FUZZ
@given(
    st.sampled_from(RECORDS).flatmap(
        lambda found: st.tuples(st.just(found[0]), mutated(found[1]) | json_value)
    )
)
@example(
    changed_record(
        EVENT_SCHEMAS[Agency.SOCIAL_CARE],
        envelope={"occurred_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))},
    )
).via(
    "an aware time that falls before year 1 in UTC passed validation, then Avro encoding "
    "failed with OverflowError"
)
@example(changed_record(EVENT_SCHEMAS[Agency.SOCIAL_CARE], envelope={"event_type": ""})).via(
    "found by the nightly run: an event type outside the family was refused without a field"
)
@example(changed_record(EVENT_SCHEMAS[Agency.HOUSING], arrears_threshold_weeks=2**31)).via(
    "found by the nightly run: a threshold over Avro's int failed encoding"
)
def test_event_models_take_valid_events_and_refuse_anything_else_by_field(
    event: tuple[str, Any],
) -> None:
    schema, data = event
    try:
        accepted = validate_event(MODELS[schema], data)
    except BadInput as problem:
        # Only something that is not an object at all has no field to name.
        assert problem.field or not isinstance(data, dict), problem
        outcome(f"refused: {problem.field or 'not an object'}")
        return
    readable_back(accepted)
