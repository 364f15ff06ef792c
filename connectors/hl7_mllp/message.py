"""An HL7 v2 message as the connector reads it: fields by position, problems named by field.

Parsing is python-hl7's; this module only decides what an absent or malformed field means
for the backbone, and names it the way HL7 people do (`PID-7`, `MSH-10`).
"""

from __future__ import annotations

from typing import Any

import hl7

from backbone.errors import BadInput, excerpt

# HL7 table 0357 (message error condition codes), reported in ERR-3 of an AE answer.
Condition = tuple[str, str]
SEGMENT_SEQUENCE_ERROR: Condition = ("100", "Segment sequence error")
REQUIRED_FIELD_MISSING: Condition = ("101", "Required field missing")
DATA_TYPE_ERROR: Condition = ("102", "Data type error")
UNSUPPORTED_MESSAGE_TYPE: Condition = ("200", "Unsupported message type")

# HL7's explicit null: the field is present and empty.
HL7_NULL = '""'


class MessageProblem(BadInput):
    """Why a message cannot be accepted: the field it is about and the HL7 error condition."""

    def __init__(self, reason: str, *, field: str, condition: Condition = DATA_TYPE_ERROR) -> None:
        super().__init__(reason, field=field)
        self.condition = condition


class Hl7Message:
    """One parsed ER7 message; field positions are HL7's own (MSH-9 is `value("MSH", 9)`)."""

    def __init__(self, parsed: Any) -> None:
        self._parsed = parsed
        # The first segment of each kind, found once: fields are read many times per message.
        self._segments: dict[str, Any] = {}
        for segment in parsed:
            self._segments.setdefault(str(segment[0]), segment)

    @classmethod
    def parse(cls, raw: bytes, encoding: str) -> Hl7Message:
        """Parse the payload of one MLLP frame; MessageProblem if it is not an HL7 message."""
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise MessageProblem(
                f"not {encoding} text: {exc}", field="message", condition=SEGMENT_SEQUENCE_ERROR
            ) from exc
        # Segments end with CR; some senders' exports use LF or CRLF instead.
        text = text.replace("\r\n", "\r").replace("\n", "\r")
        if not hl7.ishl7(text):
            raise MessageProblem(
                "not an HL7 v2 message: it must be one message starting with an MSH segment",
                field="MSH",
                condition=SEGMENT_SEQUENCE_ERROR,
            )
        _check_delimiters(text.strip())
        try:
            return cls(hl7.parse(text))
        except (hl7.ParseException, ValueError, IndexError, KeyError) as exc:
            raise MessageProblem(
                f"cannot be parsed as HL7 v2: {exc}", field="MSH", condition=SEGMENT_SEQUENCE_ERROR
            ) from exc

    def has(self, segment: str) -> bool:
        """Whether the message holds at least one `segment`."""
        return segment in self._segments

    def value(self, segment: str, field: int, component: int = 1, repeat: int = 1) -> str:
        """The unescaped text at the position in the first such segment; "" when absent."""
        found = self._segments.get(segment)
        if found is None:
            return ""
        try:
            text = found.extract_field(field_num=field, repeat_num=repeat, component_num=component)
        except IndexError:
            # The field holds fewer repetitions or components than asked for.
            return ""
        text = str(text).strip()
        return "" if text == HL7_NULL else text

    def repeats(self, segment: str, field: int) -> int:
        """How many repetitions the field has in the first such segment (0 when absent)."""
        found = self._segments.get(segment)
        if found is None or field >= len(found):
            return 0
        return len(found(field))

    def required(self, segment: str, field: int, component: int = 1) -> str:
        """Like `value`, but an empty field is a MessageProblem naming it."""
        text = self.value(segment, field, component)
        if not text:
            if not self.has(segment):
                raise MessageProblem(
                    f"the {segment} segment is missing",
                    field=f"{segment}-{field}",
                    condition=SEGMENT_SEQUENCE_ERROR,
                )
            raise MessageProblem(
                "is required", field=f"{segment}-{field}", condition=REQUIRED_FIELD_MISSING
            )
        return text


def _check_delimiters(text: str) -> None:
    """MSH-1 and MSH-2 must name five distinct delimiters: python-hl7 fails on an assertion
    (or silently misreads the message) when they repeat one another or are letters."""
    separator = text[3]
    segment_end = text.find("\r")
    header = text if segment_end < 0 else text[:segment_end]
    msh2_end = header.find(separator, 4)
    encoding = header[4:] if msh2_end < 0 else header[4:msh2_end]
    delimiters = separator + encoding[:4]
    if (
        len(encoding) not in (4, 5)  # v2.7 adds a fifth, the truncation character
        or len(set(delimiters)) != len(delimiters)
        or any(ch.isalnum() or ch.isspace() for ch in delimiters)
    ):
        raise MessageProblem(
            f"encoding characters {excerpt(encoding)} after field separator {separator!r} are not "
            "four distinct delimiters such as ^~\\&",
            field="MSH-2",
            condition=DATA_TYPE_ERROR,
        )
