"""The hl7-mllp connector on real parts: a real TCP MLLP sender, a real connector process and
the real Kafka broker.

The hospital simulator sends ADT messages over MLLP; what lands on `<prefix>.health.events`
and `<prefix>.deadletter` is read back from Kafka and decoded with the backbone's codec.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import Agency
from backbone.pseudonyms import Pseudonymiser
from backbone.settings import REPO_ROOT
from backbone.topics import Topics
from cli.kafka_probe import Record, read_all
from cli.processes import BackboneProcess, free_port, stop_all
from connectors.hl7_mllp.mapping import event_id_for
from simulators.hospital import (
    END_BLOCK,
    START_BLOCK,
    AdtMessage,
    HospitalPas,
    Patient,
    Visit,
    frame,
)
from tests.conftest import Deployment

CODEC = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
MAX_MESSAGE_BYTES = 64 * 1024


@dataclass
class Hospital:
    """One running connector process and the hospital system that talks to it."""

    deployment: Deployment
    connector: BackboneProcess
    mllp_port: int
    metrics_port: int

    @property
    def topics(self) -> Topics:
        return Topics(self.deployment.prefix)

    def pas(self, **options: Any) -> HospitalPas:
        return HospitalPas("127.0.0.1", self.mllp_port, **options)

    def health_events(self) -> list[Record]:
        return read_all(self.deployment.bootstrap, self.topics.agency_events(Agency.HEALTH))

    def dead_letters(self) -> list[Record]:
        return read_all(self.deployment.bootstrap, self.topics.dead_letter)


def wait_listening(port: int, timeout_s: float = 30.0) -> None:
    """Block until the MLLP port accepts connections (it opens just after /health)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on MLLP port {port}") from None
            time.sleep(0.05)


def start_connector(
    deployment: Deployment, logs: Path, name: str, **env: str
) -> tuple[BackboneProcess, int, int]:
    """A `backbone connector run hl7-mllp` process on fresh ports (not yet healthy)."""
    mllp_port, metrics_port = free_port(), free_port()
    environment = deployment.env() | {
        "BACKBONE_MLLP_PORT": str(mllp_port),
        "BACKBONE_METRICS_PORT": str(metrics_port),
        "BACKBONE_MLLP_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        **env,
    }
    process = BackboneProcess.start(
        name,
        ["connector", "run", "hl7-mllp"],
        environment,
        logs,
        f"http://127.0.0.1:{metrics_port}/health",
    )
    return process, mllp_port, metrics_port


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def hospital(deployment: Deployment, logs: Path) -> Iterator[Hospital]:
    connector, mllp_port, metrics_port = start_connector(deployment, logs, "hl7-mllp")
    try:
        connector.wait_healthy()
        wait_listening(mllp_port)
        yield Hospital(deployment, connector, mllp_port, metrics_port)
    finally:
        stop_all([connector])


def new_patient(**changes: Any) -> Patient:
    patient = Patient(
        hospital_number=f"H{uuid.uuid4().hex[:8].upper()}",
        family_name="Ó Súilleabháin",
        given_name="Siobhán ",
        birth_date=date(1984, 2, 29),
        sex="F",
        national_id="QQ 12 34 56 C",
        street="1 High St",
        city="Leeds",
        postcode="ls6 1aa",
    )
    return replace(patient, **changes)


def adt(trigger: str, patient: Patient, **changes: Any) -> AdtMessage:
    message = AdtMessage(
        trigger,
        patient,
        control_id=f"MSG{uuid.uuid4().hex[:12]}",
        occurred_at=datetime(2026, 3, 1, 10, 15, tzinfo=UTC),
        visit=Visit("I", "EL", admitted_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
    )
    return replace(message, **changes)


def decoded(records: list[Record], message: AdtMessage) -> tuple[Record, dict[str, Any]]:
    """The record of `message` on the topic (found by its event id) and its decoded event."""
    event_id = event_id_for(message.facility, message.control_id).encode()
    raw = next(r for r in records if r.headers["event_id"] == event_id)
    return raw, CODEC.decode(raw.value).record


def test_each_adt_message_type_lands_as_its_health_event(
    hospital: Hospital, deployment: Deployment
) -> None:
    patient = new_patient()
    admitted = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    discharged = datetime(2026, 3, 4, 16, 30, tzinfo=UTC)
    messages = {
        "admission": adt("A01", patient),
        "discharge": adt(
            "A03",
            patient,
            visit=Visit("I", "EL", "01", admitted_at=admitted, discharged_at=discharged),
        ),
        "attendance": adt("A04", patient, visit=Visit("E", "EM")),
        "patient_details_changed": adt("A08", patient, visit=None),
        "patient_records_merged": adt("A40", patient, visit=None, prior_hospital_number="H-OLD-77"),
    }
    pas = hospital.pas()
    answers = pas.send_all(list(messages.values()))
    pas.close()

    assert [(a.code, a.control_id) for a in answers] == [
        ("AA", m.control_id) for m in messages.values()
    ]
    records = hospital.health_events()
    pseudonyms = Pseudonymiser(deployment.pseudonym_key.encode())
    hospital_hash = pseudonyms.record_id("health", "hospital_number", patient.hospital_number)
    for event_type, message in messages.items():
        raw, event = decoded(records, message)
        envelope = event["envelope"]
        assert raw.key == hospital_hash.encode()
        assert envelope["event_id"] == event_id_for("RBH", message.control_id)
        assert envelope["event_type"] == event_type
        assert envelope["agency"] == "health"
        assert envelope["source_system"] == "hospital-pas"
        assert envelope["legal_basis"] == "health_and_social_care"
        assert envelope["sensitivity"] == "special_category"
        assert envelope["occurred_at"] == datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
        assert event["facility"] == "RBH"
        assert event["message_control_id"] == message.control_id
        assert envelope["subject"] == {
            "record_id": hospital_hash,
            "id_type": "hospital_number",
            "national_id": pseudonyms.national_id("QQ123456C"),
            "family_name": "o suilleabhain",
            "given_name": "siobhan",
            "birth_date": date(1984, 2, 29),
            "sex": "F",
            "postcode": "LS61AA",
        }
    assert decoded(records, messages["discharge"])[1]["encounter"] == {
        "patient_class": "I",
        "admission_type": "EL",
        "discharge_disposition": "01",
        "admitted_at": admitted,
        "discharged_at": discharged,
    }
    assert decoded(records, messages["attendance"])[1]["encounter"]["patient_class"] == "E"
    assert decoded(records, messages["patient_details_changed"])[1]["encounter"] is None
    merged = decoded(records, messages["patient_records_merged"])[1]
    assert merged["merged_record_id"] == pseudonyms.record_id(
        "health", "hospital_number", "H-OLD-77"
    )


def test_identifiers_travel_only_as_keyed_hashes(hospital: Hospital) -> None:
    patient = new_patient(national_id="ZZ987654A")
    message = adt("A01", patient)
    assert hospital.pas().send(message).code == "AA"

    raw, _event = decoded(hospital.health_events(), message)

    for clear in (patient.hospital_number, "ZZ987654A", "ZZ 98 76 54 A"):
        assert clear.encode() not in raw.value
        assert clear.encode() not in (raw.key or b"")


def test_occurred_at_falls_back_to_evn2_then_msh7_and_reads_local_time(
    hospital: Hospital,
) -> None:
    patient = new_patient()
    base = adt("A08", patient, visit=None).er7()
    evn2_only = base.replace("|||USER1|20260301101500+0000", "|||USER1|")
    no_evn = "\r".join(s for s in base.split("\r") if not s.startswith("EVN")) + "\r"
    # Summer time in London: 12:00 local is 11:00 UTC.
    local_time = no_evn.replace("20260301101500+0000", "20260701120000")
    variants = []
    for index, text in enumerate((evn2_only, no_evn, local_time)):
        control_id = f"TIME{uuid.uuid4().hex[:8]}{index}"
        variants.append(
            (control_id, text.replace(f"|{adt_control_id(base)}|", f"|{control_id}|").encode())
        )

    answers = hospital.pas().send_all([payload for _id, payload in variants])

    assert [a.code for a in answers] == ["AA", "AA", "AA"]
    records = hospital.health_events()
    occurred = []
    for control_id, _payload in variants:
        event_id = event_id_for("RBH", control_id).encode()
        raw = next(r for r in records if r.headers["event_id"] == event_id)
        occurred.append(CODEC.decode(raw.value).record["envelope"]["occurred_at"])
    assert occurred == [
        datetime(2026, 3, 1, 10, 15, tzinfo=UTC),
        datetime(2026, 3, 1, 10, 15, tzinfo=UTC),
        datetime(2026, 7, 1, 11, 0, tzinfo=UTC),
    ]


def adt_control_id(er7: str) -> str:
    return er7.split("\r")[0].split("|")[9]


def test_malformed_messages_get_ae_with_err_are_dead_lettered_and_the_stream_goes_on(
    hospital: Hospital,
) -> None:
    patient = new_patient()
    good_before, good_after = adt("A04", patient), adt("A08", patient, visit=None)
    well_formed = adt("A01", patient).er7()
    bad_birth = well_formed.replace("|19840229|", "|19840230|")
    no_control_id = well_formed.replace(f"|{adt_control_id(well_formed)}|P|", "||P|")
    unsupported = well_formed.replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01")
    no_hospital_number = well_formed.replace("^^^RBH^MR~", "^^^RBH^PI~")
    bad_time = well_formed.replace("20260301100000+0000", "2026030110XX")
    oversize = well_formed + "NTE|1||" + "x" * MAX_MESSAGE_BYTES + "\r"
    cases: list[tuple[bytes, str, str, str]] = [
        (bad_birth.encode(), "PID-7: ", "PID^1^7", "102"),
        (b"hello, this is not HL7", "MSH: not an HL7 v2 message", "", "100"),
        (no_control_id.encode(), "MSH-10: is required", "MSH^1^10", "101"),
        (unsupported.encode(), "MSH-9: message type 'ORU^R01' is not supported", "MSH^1^9", "200"),
        (no_hospital_number.encode(), "PID-3: has no identifier of type MR", "PID^1^3", "101"),
        (bad_time.encode(), "PV1-44: ", "PV1^1^44", "102"),
        (oversize.encode(), "MLLP: message is larger than", "", "100"),
    ]
    payloads = [good_before.encode()]
    payloads += [text for text, *_ in cases]
    payloads += [good_after.encode()]
    pas = hospital.pas()

    # One connection, one message after the other: the connection survives every refusal.
    answers = pas.exchange([frame(p) for p in payloads], answers=len(payloads))

    assert [a.code for a in answers] == ["AA"] + ["AE"] * len(cases) + ["AA"]
    for answer, (_text, reason, location, condition) in zip(answers[1:-1], cases, strict=True):
        assert answer.error_message.startswith(reason), answer.error_message
        assert answer.error_location == location
        assert answer.error_condition.split("^")[0] == condition
    assert answers[1].control_id == adt_control_id(well_formed)
    letters = hospital.dead_letters()
    for payload, (_text, reason, *_rest) in zip(payloads[1:-1], cases, strict=True):
        letter = next(r for r in letters if r.headers["reason"].decode().startswith(reason))
        assert letter.headers["connector"] == b"hl7-mllp"
        assert letter.headers["source"].startswith(b"mllp://127.0.0.1:")
        # The raw message as received (an oversize one: its first bytes).
        assert letter.value == payload[:MAX_MESSAGE_BYTES]
    assert {r.headers["event_id"] for r in hospital.health_events()} >= {
        event_id_for("RBH", good_before.control_id).encode(),
        event_id_for("RBH", good_after.control_id).encode(),
    }
    metrics = httpx.get(f"http://127.0.0.1:{hospital.metrics_port}/metrics").text
    assert 'backbone_dead_letters_total{component="hl7-mllp",reason="PID-7"} ' in metrics
    assert 'backbone_events_in_total{agency="health",component="hl7-mllp"}' in metrics


def test_broken_framing_and_hostile_messages_are_dead_lettered_and_the_stream_goes_on(
    hospital: Hospital,
) -> None:
    patient = new_patient()
    unended, after_unended, last = (
        adt("A08", patient, visit=None),
        adt("A04", patient),
        adt("A01", patient),
    )
    bad_delimiters = b"MSH|999\rPID|1"
    huge_sex = adt("A08", patient, visit=None).er7().replace("|F|", "|" + "X" * 60_000 + "|")
    stray = b"junk between frames"
    sent = [
        frame(bad_delimiters),  # python-hl7 failed on an assertion: the connection was dropped
        START_BLOCK + unended.encode(),  # no end block: it swallowed the next message
        frame(after_unended.encode()),
        stray + END_BLOCK,  # not framed: dead-lettered, not answered
        frame(huge_sex.encode()),
        frame(last.encode()),
    ]

    answers = hospital.pas().exchange([b"".join(sent)], answers=5)

    assert [a.code for a in answers] == ["AE", "AE", "AA", "AE", "AA"]
    assert answers[0].error_message.startswith("MSH-2: encoding characters '999'")
    assert answers[1].error_message.startswith("MLLP: message has no end block")
    assert answers[2].control_id == after_unended.control_id
    assert answers[3].error_message.startswith("PID-8: 'XXXX")
    assert len(answers[3].raw) < 1000  # the reason quotes only the start of the field
    assert answers[4].control_id == last.control_id
    by_value = {r.value: r.headers["reason"].decode() for r in hospital.dead_letters()}
    assert by_value[bad_delimiters].startswith("MSH-2: ")
    assert by_value[unended.encode()].startswith("MLLP: message has no end block")
    assert by_value[huge_sex.encode()].startswith("PID-8: 'XXXX")
    assert by_value[stray] == "MLLP: bytes outside a frame: no start block before them"
    ids = {r.headers["event_id"] for r in hospital.health_events()}
    assert event_id_for("RBH", after_unended.control_id).encode() in ids
    assert event_id_for("RBH", last.control_id).encode() in ids


def test_several_messages_in_one_read_and_one_message_over_several_reads(
    hospital: Hospital,
) -> None:
    patient = new_patient()
    together = [adt("A08", patient, visit=None) for _ in range(3)]
    split = adt("A01", patient)
    pas = hospital.pas()

    # Line noise before a start block is ignored; three frames arrive in one write.
    first = pas.exchange([b"\r\n" + b"".join(frame(m.encode()) for m in together)], answers=3)
    framed = frame(split.encode())
    pieces = [framed[:1], framed[1:40], framed[40:-1], framed[-1:]]
    second = pas.exchange(pieces, answers=1, pause_s=0.05)

    assert [(a.code, a.control_id) for a in first] == [("AA", m.control_id) for m in together]
    assert (second[0].code, second[0].control_id) == ("AA", split.control_id)
    ids = {r.headers["event_id"] for r in hospital.health_events()}
    assert {event_id_for("RBH", m.control_id).encode() for m in [*together, split]} <= ids


def test_several_connections_at_once_and_pipelining_senders(hospital: Hospital) -> None:
    batches = [[adt("A08", new_patient(), visit=None) for _ in range(40)] for _ in range(4)]
    results: dict[int, list[str]] = {}

    def send(number: int) -> None:
        pas = hospital.pas()
        results[number] = [a.control_id for a in pas.send_all(batches[number], window=8)]
        pas.close()

    senders = [threading.Thread(target=send, args=(n,)) for n in range(len(batches))]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=60)

    assert results == {n: [m.control_id for m in batch] for n, batch in enumerate(batches)}
    ids = {r.headers["event_id"] for r in hospital.health_events()}
    expected = {event_id_for("RBH", m.control_id).encode() for b in batches for m in b}
    assert expected <= ids


def test_a_resent_message_keeps_its_event_id(hospital: Hospital) -> None:
    message = adt("A03", new_patient())
    pas = hospital.pas()
    assert pas.send(message).code == "AA"
    assert pas.send(message).code == "AA"

    event_id = event_id_for("RBH", message.control_id).encode()
    copies = [r for r in hospital.health_events() if r.headers["event_id"] == event_id]
    assert len(copies) == 2
    assert CODEC.decode(copies[0].value).record["envelope"]["event_id"] == event_id.decode()


def test_a_killed_connector_loses_nothing_the_sender_resends_what_was_unacknowledged(
    deployment: Deployment, logs: Path
) -> None:
    facility = f"KILL{uuid.uuid4().hex[:6]}"
    messages = [adt("A08", new_patient(), visit=None, facility=facility) for _ in range(300)]
    connector, mllp_port, metrics_port = start_connector(deployment, logs, "hl7-mllp-killed")
    restarted: BackboneProcess | None = None
    pas = HospitalPas("127.0.0.1", mllp_port, answer_timeout_s=10.0, give_up_after_s=90.0)
    outcome: dict[str, Any] = {}

    def hospital_sends() -> None:
        try:
            outcome["answers"] = pas.send_all(messages, window=4)
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    try:
        connector.wait_healthy()
        wait_listening(mllp_port)
        sender = threading.Thread(target=hospital_sends)
        sender.start()
        deadline = time.monotonic() + 60
        while pas.acknowledged < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pas.acknowledged >= 60, "the connector answered too few messages"
        connector.process.send_signal(signal.SIGKILL)
        connector.process.wait(timeout=10)
        acknowledged_at_kill = pas.acknowledged
        restarted = BackboneProcess.start(
            "hl7-mllp-restarted",
            ["connector", "run", "hl7-mllp"],
            deployment.env()
            | {"BACKBONE_MLLP_PORT": str(mllp_port), "BACKBONE_METRICS_PORT": str(metrics_port)},
            logs,
            f"http://127.0.0.1:{metrics_port}/health",
        )
        sender.join(timeout=120)
    finally:
        stop_all([p for p in (connector, restarted) if p is not None])
        pas.close()

    assert "error" not in outcome, outcome.get("error")
    assert acknowledged_at_kill < len(messages), "the kill came after the stream ended"
    assert [a.code for a in outcome["answers"]] == ["AA"] * len(messages)
    assert pas.resent > 0
    sent = {event_id_for(facility, m.control_id) for m in messages}
    on_topic = {
        CODEC.decode(r.value).record["envelope"]["event_id"]
        for r in read_all(
            deployment.bootstrap, Topics(deployment.prefix).agency_events(Agency.HEALTH)
        )
        if CODEC.decode(r.value).record["facility"] == facility
    }
    assert on_topic == sent


def test_kafka_unreachable_gets_ar_and_the_connector_keeps_answering(
    deployment: Deployment, logs: Path
) -> None:
    connector, mllp_port, _metrics = start_connector(
        deployment,
        logs,
        "hl7-mllp-no-kafka",
        BACKBONE_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
        BACKBONE_DELIVERY_TIMEOUT_S="1",
    )
    pas = HospitalPas("127.0.0.1", mllp_port, answer_timeout_s=15.0)
    try:
        connector.wait_healthy(timeout_s=60)
        wait_listening(mllp_port)
        started = time.monotonic()
        first = pas.send_once(adt("A01", new_patient()))
        second = pas.send_once(adt("A03", new_patient()))
        elapsed = time.monotonic() - started
        assert connector.process.poll() is None, "the connector crashed"
    finally:
        pas.close()
        stop_all([connector])

    assert (first.code, second.code) == ("AR", "AR")
    assert first.error_message == "" and first.control_id != ""
    assert elapsed < 10, f"AR took {elapsed:.1f} s"
