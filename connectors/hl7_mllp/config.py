"""Settings of the hospital ADT (HL7 v2 over MLLP) connector."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from connectors.runtime.config import ConnectorSettings


class Hl7MllpSettings(ConnectorSettings):
    """Where the MLLP server listens and how it reads the hospital's messages."""

    mllp_host: str = Field("127.0.0.1", description="Address the MLLP server binds")
    mllp_port: int = Field(2575, description="Port the hospital's ADT sender connects to")
    mllp_source_system: str = Field("hospital-pas", description="source_system on events")
    mllp_timezone: str = Field(
        "Europe/London", description="Zone of HL7 times that carry no UTC offset"
    )
    mllp_encoding: str = Field("utf-8", description="Character set of the messages' bytes")
    mllp_max_message_bytes: int = Field(
        1024 * 1024, gt=0, description="Larger messages are refused with AE and dead-lettered"
    )
    mllp_max_in_flight: int = Field(
        32,
        ge=1,
        description="Messages of one connection processed at once when the sender pipelines",
    )
    mllp_application: str = Field(
        "BACKBONE", description="MSH-3 sending application of the ACKs the connector answers"
    )

    @field_validator("mllp_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone") from exc
        return value
