"""HL7 v2.5 acknowledgements (original mode): AA accepted, AE error, AR rejected for now.

AA is sent only once the event is on Kafka; AE carries an ERR segment that names the field
and the HL7 error condition; AR tells the sender to resend later.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from backbone.errors import BadInput
from connectors.hl7_mllp.message import DATA_TYPE_ERROR, Hl7Message, MessageProblem

ENCODING_CHARACTERS = "^~\\&"
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}
_FIELD_NAME = re.compile(r"([A-Z][A-Z0-9]{2})-(\d+)")


class AckCode(StrEnum):
    """MSA-1 (HL7 table 0008)."""

    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"


@dataclass(frozen=True)
class Inbound:
    """What an answer echoes from the message it answers (blank when it could not be read)."""

    sending_application: str = ""
    sending_facility: str = ""
    receiving_facility: str = ""
    trigger: str = ""
    control_id: str = ""
    processing_id: str = "P"

    @classmethod
    def of(cls, message: Hl7Message | None) -> Inbound:
        """The header fields of `message`, read leniently: an answer must always be possible."""
        if message is None:
            return cls()
        return cls(
            sending_application=message.value("MSH", 3),
            sending_facility=message.value("MSH", 4),
            receiving_facility=message.value("MSH", 6),
            trigger=message.value("MSH", 9, component=2),
            control_id=message.value("MSH", 10),
            processing_id=message.value("MSH", 11) or "P",
        )


def escape(text: str) -> str:
    """Text made safe for one HL7 field (delimiters escaped, line breaks flattened)."""
    flat = " ".join(text.split())
    return "".join(_ESCAPES.get(ch, ch) for ch in flat)


def acknowledgement(
    code: AckCode, inbound: Inbound, application: str, problem: BadInput | None = None
) -> bytes:
    """The ACK message (ER7, CR-separated) answering `inbound` with `code`."""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    msh = [
        "MSH",
        ENCODING_CHARACTERS,
        escape(application),
        escape(inbound.receiving_facility),
        escape(inbound.sending_application),
        escape(inbound.sending_facility),
        now,
        "",
        f"ACK^{escape(inbound.trigger)}^ACK",
        uuid.uuid4().hex[:20],
        escape(inbound.processing_id),
        "2.5",
    ]
    msa = ["MSA", code.value, escape(inbound.control_id)]
    segments = ["|".join(msh), "|".join(msa)]
    if problem is not None:
        msa.append(escape(str(problem)))
        segments[1] = "|".join(msa)
        segments.append(_err_segment(problem))
    return ("\r".join(segments) + "\r").encode("utf-8")


def _err_segment(problem: BadInput) -> str:
    """ERR: location (ERR-2), condition (ERR-3), severity E (ERR-4), user message (ERR-8)."""
    condition = problem.condition if isinstance(problem, MessageProblem) else DATA_TYPE_ERROR
    found = _FIELD_NAME.fullmatch(problem.field or "")
    location = f"{found.group(1)}^1^{found.group(2)}" if found else ""
    code, text = condition
    return f"ERR||{location}|{code}^{escape(text)}^HL70357|E||||{escape(str(problem))}"
