"""Plays the hospital's patient administration system: ADT messages over MLLP.

It builds HL7 v2.5 ADT messages (A01 admit, A03 discharge, A04 register, A08 update, A40
merge) for a patient, sends each framed with MLLP (0x0B ... 0x1C 0x0D), waits for its ACK and
resends on AR or when no ACK comes (connection lost, no answer in time), the way a hospital
interface engine does. It shares no code with the connector: it is the outside world.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import hl7

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
TRIGGERS = ("A01", "A03", "A04", "A08", "A40")
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}


def frame(payload: bytes) -> bytes:
    """`payload` framed for MLLP."""
    return START_BLOCK + payload + END_BLOCK


def hl7_time(moment: datetime) -> str:
    """An HL7 TS: with its UTC offset when `moment` is aware, local time otherwise."""
    return moment.strftime("%Y%m%d%H%M%S%z")


def _text(value: str | None) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in value or "")


@dataclass(frozen=True)
class Patient:
    """A patient as the hospital's PAS records them."""

    hospital_number: str
    family_name: str
    given_name: str
    birth_date: date
    sex: str = "U"
    national_id: str | None = None
    street: str = ""
    city: str = ""
    postcode: str | None = None

    def pid(self) -> str:
        """The PID segment."""
        identifiers = [f"{_text(self.hospital_number)}^^^RBH^MR"]
        if self.national_id:
            identifiers.append(f"{_text(self.national_id)}^^^NHS^NI")
        address = f"{_text(self.street)}^^{_text(self.city)}^^{_text(self.postcode)}"
        name = f"{_text(self.family_name)}^{_text(self.given_name)}"
        born = self.birth_date.strftime("%Y%m%d")
        return f"PID|1||{'~'.join(identifiers)}||{name}||{born}|{self.sex}|||{address}"


@dataclass(frozen=True)
class Visit:
    """A hospital visit (PV1)."""

    patient_class: str = "I"
    admission_type: str = ""
    discharge_disposition: str = ""
    admitted_at: datetime | None = None
    discharged_at: datetime | None = None

    def pv1(self) -> str:
        """The PV1 segment (fields 2, 4, 36, 44 and 45 filled)."""
        fields = [""] * 46
        fields[0], fields[1], fields[2] = "PV1", "1", self.patient_class
        fields[4] = _text(self.admission_type)
        fields[36] = _text(self.discharge_disposition)
        fields[44] = hl7_time(self.admitted_at) if self.admitted_at else ""
        fields[45] = hl7_time(self.discharged_at) if self.discharged_at else ""
        return "|".join(fields)


@dataclass(frozen=True)
class AdtMessage:
    """One ADT message as the PAS sends it; the control id is unique per message."""

    trigger: str
    patient: Patient
    control_id: str
    occurred_at: datetime
    facility: str = "RBH"
    visit: Visit | None = None
    prior_hospital_number: str | None = None

    def er7(self) -> str:
        """The message text, segments separated by CR."""
        sent = hl7_time(self.occurred_at)
        segments = [
            f"MSH|^~\\&|PAS|{_text(self.facility)}|BACKBONE|COUNTY|{sent}||"
            f"ADT^{self.trigger}^ADT_A01|{_text(self.control_id)}|P|2.5",
            f"EVN|{self.trigger}|{sent}|||USER1|{sent}",
            self.patient.pid(),
        ]
        if self.prior_hospital_number is not None:
            segments.append(f"MRG|{_text(self.prior_hospital_number)}^^^RBH^MR")
        if self.visit is not None:
            segments.append(self.visit.pv1())
        return "\r".join(segments) + "\r"

    def encode(self) -> bytes:
        return self.er7().encode("utf-8")


@dataclass(frozen=True)
class Ack:
    """The backbone's answer: MSA-1 code, MSA-2 control id, and the ERR segment if any."""

    code: str
    control_id: str
    text: str
    error_location: str
    error_condition: str
    error_message: str
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Ack:
        message = hl7.parse(raw.decode("utf-8"))
        msa = message.segment("MSA")
        has_err = any(str(segment[0]) == "ERR" for segment in message)
        err = message.segment("ERR") if has_err else None

        def err_field(number: int) -> str:
            return str(err(number)) if err is not None and number < len(err) else ""

        return cls(
            code=str(msa.extract_field(field_num=1)),
            control_id=str(msa.extract_field(field_num=2)),
            text=str(msa.extract_field(field_num=3)),
            error_location=err_field(2),
            error_condition=err_field(3),
            error_message=str(err.extract_field(field_num=8)) if err is not None else "",
            raw=raw,
        )


class NoAnswer(Exception):  # noqa: N818 - what the sender observes
    """The connection closed or stayed silent before the ACK came."""


class HospitalPas:
    """Sends messages to the backbone's MLLP port, holding each until it is acknowledged."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        answer_timeout_s: float = 15.0,
        give_up_after_s: float = 90.0,
        retry_pause_s: float = 0.2,
    ) -> None:
        self.host = host
        self.port = port
        self.answer_timeout_s = answer_timeout_s
        self.give_up_after_s = give_up_after_s
        self.retry_pause_s = retry_pause_s
        self.acknowledged = 0  # messages with a final answer (AA or AE) so far
        self.resent = 0
        self._socket: socket.socket | None = None
        self._buffer = bytearray()

    def send(self, message: AdtMessage | bytes) -> Ack:
        """Send one message until it gets a final answer (AA or AE); resends on AR."""
        return self.send_all([message])[0]

    def send_all(self, messages: Sequence[AdtMessage | bytes], window: int = 1) -> list[Ack]:
        """Send every message, up to `window` unanswered at once, until each has a final
        answer; resends (on a new connection) whatever got AR or no answer."""
        payloads = [m.encode() if isinstance(m, AdtMessage) else m for m in messages]
        answers: list[Ack | None] = [None] * len(payloads)
        todo = deque(range(len(payloads)))
        deadline = time.monotonic() + self.give_up_after_s
        while todo:
            if time.monotonic() > deadline:
                raise NoAnswer(f"{len(todo)} messages still unacknowledged; giving up")
            rejected = self._round(payloads, todo, answers, window)
            if rejected or todo:
                self.resent += len(rejected) + len(todo)
                time.sleep(self.retry_pause_s)
                todo.extend(rejected)
        return [answer for answer in answers if answer is not None]

    def send_once(self, message: AdtMessage | bytes) -> Ack:
        """Send one message on the current connection and return whatever answer comes."""
        payload = message.encode() if isinstance(message, AdtMessage) else message
        return self.exchange([frame(payload)], answers=1)[0]

    def exchange(self, chunks: Sequence[bytes], answers: int, pause_s: float = 0.0) -> list[Ack]:
        """Write raw bytes as separate TCP writes, then read `answers` ACKs; no resending."""
        connection = self._connect()
        for index, chunk in enumerate(chunks):
            if index and pause_s:
                time.sleep(pause_s)  # so the chunks arrive as separate TCP reads
            connection.sendall(chunk)
        return [self._read_ack() for _ in range(answers)]

    def close(self) -> None:
        """Close the connection (the next send opens a new one)."""
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._buffer.clear()

    def _round(
        self,
        payloads: list[bytes],
        todo: deque[int],
        answers: list[Ack | None],
        window: int,
    ) -> list[int]:
        """Send from `todo` over one connection; the indexes answered AR are returned.

        On a lost connection the unanswered messages go back to the front of `todo`."""
        in_flight: deque[int] = deque()
        rejected: list[int] = []
        try:
            connection = self._connect()
            while todo or in_flight:
                while todo and len(in_flight) < window:
                    connection.sendall(frame(payloads[todo[0]]))
                    in_flight.append(todo.popleft())
                ack = self._read_ack()
                index = in_flight.popleft()
                if ack.code == "AR":
                    rejected.append(index)
                else:
                    answers[index] = ack
                    self.acknowledged += 1
        except (OSError, NoAnswer):
            self.close()
            todo.extendleft(reversed(in_flight))
        return rejected

    def _connect(self) -> socket.socket:
        if self._socket is None:
            connection = socket.create_connection((self.host, self.port), timeout=5.0)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.settimeout(self.answer_timeout_s)
            self._socket = connection
        return self._socket

    def _read_ack(self) -> Ack:
        connection = self._connect()
        while (end := self._buffer.find(END_BLOCK)) < 0:
            try:
                data = connection.recv(65536)
            except TimeoutError as exc:
                raise NoAnswer(f"no ACK within {self.answer_timeout_s} s") from exc
            if not data:
                raise NoAnswer("the backbone closed the connection")
            self._buffer += data
        content = bytes(self._buffer[:end])
        del self._buffer[: end + len(END_BLOCK)]
        return Ack.parse(content[content.find(START_BLOCK) + 1 :])
