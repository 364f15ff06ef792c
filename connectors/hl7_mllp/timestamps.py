"""HL7 v2 times and dates (TS / DTM / DT) as aware datetimes and dates.

A time with a UTC offset (`20260301101500+0100`) is exact; one without is the sender's local
time, read in the configured zone (the hospital's, Europe/London by default).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import hl7

from backbone.errors import excerpt
from connectors.hl7_mllp.message import MessageProblem

# YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ], the DTM format of HL7 v2.5.
_DTM = re.compile(
    r"\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?(?:[+-]\d{4})?"
)
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?")


def parse_time(value: str, zone: ZoneInfo, field: str) -> datetime:
    """An HL7 time as an aware UTC datetime; MessageProblem naming `field` if malformed."""
    if not _DTM.fullmatch(value):
        raise MessageProblem(
            f"{excerpt(value)} is not an HL7 time (YYYYMMDD[HHMM[SS[.S]]][+/-ZZZZ])", field=field
        )
    try:
        parsed: datetime = hl7.parse_datetime(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise MessageProblem(f"{excerpt(value)} is not a valid time: {exc}", field=field) from exc


def parse_date(value: str, field: str) -> date:
    """An HL7 date (YYYYMMDD, possibly followed by a time) as a date."""
    found = _DATE.fullmatch(value)
    if found is None:
        raise MessageProblem(f"{excerpt(value)} is not an HL7 date (YYYYMMDD)", field=field)
    year, month, day = (int(part) for part in found.groups())
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise MessageProblem(f"{excerpt(value)} is not a valid date: {exc}", field=field) from exc
