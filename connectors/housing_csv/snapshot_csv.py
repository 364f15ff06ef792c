"""The nightly export's format: `tenancies_YYYYMMDD.csv`, one row per tenancy, streamed.

Rows are parsed one at a time so a 1,000,000-row file never sits in memory. Each row keeps the
raw text it came from, so a malformed row can go to the dead-letter topic exactly as written.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from backbone.errors import BadInput

COLUMNS = (
    "as_of",
    "tenancy_ref",
    "tenant_ref",
    "national_id",
    "family_name",
    "given_name",
    "birth_date",
    "address",
    "postcode",
    "tenancy_status",
    "arrears_amount",
    "arrears_weeks",
    "notice",
    "homelessness_application",
    "household_size",
)
TENANCY_STATUSES = frozenset({"active", "ended"})
NOTICES = frozenset({"none", "notice_seeking_possession", "notice_to_quit", "eviction_warrant"})
HOMELESSNESS_APPLICATIONS = frozenset({"none", "open", "accepted", "closed"})
# Bytes that are not UTF-8 are read as lone surrogates (errors="surrogateescape"), so one bad
# row is dead-lettered byte for byte instead of failing the whole file.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class TenancyRow:
    """One tenancy as the housing system exported it, validated (identifiers still clear)."""

    as_of: date
    tenancy_ref: str
    tenant_ref: str
    national_id: str | None
    family_name: str
    given_name: str
    birth_date: date
    address: str
    postcode: str | None
    tenancy_status: str
    arrears_pence: int
    arrears_weeks: float
    notice: str
    homelessness_application: str
    household_size: int


@dataclass(frozen=True)
class RawRow:
    """A data row as read: its first line number, its raw text and its parsed fields."""

    line: int
    raw: str
    fields: list[str]


def _required(value: str, column: str) -> str:
    if not value.strip():
        raise BadInput("is empty", field=column)
    return value.strip()


def _optional(value: str) -> str | None:
    return value.strip() or None


def _date(value: str, column: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadInput(f"{value!r} is not a date (YYYY-MM-DD)", field=column) from None


def _one_of(value: str, allowed: frozenset[str], column: str) -> str:
    if value.strip() not in allowed:
        raise BadInput(f"{value!r} is not one of {', '.join(sorted(allowed))}", field=column)
    return value.strip()


def _pence(value: str, column: str) -> int:
    try:
        pounds = Decimal(value.strip())
    except InvalidOperation:
        raise BadInput(f"{value!r} is not an amount in pounds", field=column) from None
    pence = pounds * 100
    if not pence.is_finite() or pence != pence.to_integral_value():
        raise BadInput(f"{value!r} is not an amount in pounds and pence", field=column)
    return int(pence)


def _weeks(value: str, column: str) -> float:
    try:
        weeks = float(value.strip())
    except ValueError:
        raise BadInput(f"{value!r} is not a number of weeks", field=column) from None
    if not math.isfinite(weeks) or weeks < 0:
        raise BadInput(f"{value!r} is not a number of weeks >= 0", field=column)
    return weeks


def _count(value: str, column: str) -> int:
    try:
        count = int(value.strip())
    except ValueError:
        raise BadInput(f"{value!r} is not a whole number", field=column) from None
    if count < 0:
        raise BadInput(f"{value!r} is negative", field=column)
    return count


def parse_row(fields: list[str]) -> TenancyRow:
    """Validate one row (fields in COLUMNS order); BadInput names the first bad column."""
    if len(fields) != len(COLUMNS):
        raise BadInput(f"has {len(fields)} columns, expected {len(COLUMNS)}", field="row")
    v = dict(zip(COLUMNS, fields, strict=True))
    for column, value in v.items():
        if _NOT_UTF8.search(value):
            raise BadInput("is not valid UTF-8", field=column)
    return TenancyRow(
        as_of=_date(v["as_of"], "as_of"),
        tenancy_ref=_required(v["tenancy_ref"], "tenancy_ref"),
        tenant_ref=_required(v["tenant_ref"], "tenant_ref"),
        national_id=_optional(v["national_id"]),
        family_name=_required(v["family_name"], "family_name"),
        given_name=_required(v["given_name"], "given_name"),
        birth_date=_date(v["birth_date"], "birth_date"),
        address=v["address"].strip(),
        postcode=_optional(v["postcode"]),
        tenancy_status=_one_of(v["tenancy_status"], TENANCY_STATUSES, "tenancy_status"),
        arrears_pence=_pence(v["arrears_amount"], "arrears_amount"),
        arrears_weeks=_weeks(v["arrears_weeks"], "arrears_weeks"),
        notice=_one_of(v["notice"], NOTICES, "notice"),
        homelessness_application=_one_of(
            v["homelessness_application"], HOMELESSNESS_APPLICATIONS, "homelessness_application"
        ),
        household_size=_count(v["household_size"], "household_size"),
    )


class _LineRecorder:
    """Feeds lines to csv.reader and remembers them, so each record keeps its raw text
    (a quoted field may span lines) and the number of its first line."""

    def __init__(self, source: TextIO) -> None:
        self._source = source
        self._consumed: list[str] = []
        self._line = 0
        self._first = 1

    def __iter__(self) -> Iterator[str]:
        for text in self._source:
            self._line += 1
            if not self._consumed:
                self._first = self._line
            self._consumed.append(text)
            yield text

    def take(self) -> tuple[int, str]:
        """The first line number and raw text of the record csv.reader just returned."""
        raw = "".join(self._consumed)
        self._consumed.clear()
        return self._first, raw


def read_snapshot(path: Path) -> Iterator[RawRow]:
    """The data rows of a snapshot in file order, fields reordered to COLUMNS.

    Raises BadInput naming `header` if the header is not exactly the expected columns.
    Blank lines are skipped.
    """
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as source:
        recorder = _LineRecorder(source)
        records = csv.reader(recorder)
        header = next(records, None)
        recorder.take()
        order = _column_order(header)
        for fields in records:
            line, raw = recorder.take()
            if fields:
                yield _reordered(line, fields, order, raw)


def _reordered(line: int, fields: list[str], order: list[int], raw: str) -> RawRow:
    if len(fields) != len(order):
        return RawRow(line, raw, fields)
    return RawRow(line, raw, [fields[index] for index in order])


def _column_order(header: list[str] | None) -> list[int]:
    if header is None:
        raise BadInput("the file is empty", field="header")
    names = [name.strip().lstrip("\ufeff") for name in header]
    if sorted(names) != sorted(COLUMNS):
        expected = ", ".join(COLUMNS)
        raise BadInput(f"columns are {', '.join(names)}; expected {expected}", field="header")
    return [names.index(column) for column in COLUMNS]
