"""The nightly export's format: `tenancies_YYYYMMDD.csv`, one row per tenancy, streamed.

Rows are parsed one at a time so a 1,000,000-row file never sits in memory. Each row keeps the
raw text it came from, so a malformed row can go to the dead-letter topic exactly as written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from backbone.errors import BadInput, excerpt
from backbone.events import AVRO_LONG_MAX
from connectors.housing_csv.csv_records import CsvRecords, Record

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
# A row is about 200 characters; one this long is not a tenancy (BACKBONE_HOUSING_MAX_ROW_CHARS).
DEFAULT_MAX_ROW_CHARS = 64 * 1024


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
    """A data row as read: its first line number, its raw text and its parsed fields, or the
    problem that kept it from being read (then `raw` may be only its first characters)."""

    line: int
    raw: str
    fields: list[str]
    problem: BadInput | None = None


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
        raise BadInput(f"{excerpt(value)} is not a date (YYYY-MM-DD)", field=column) from None


def _one_of(value: str, allowed: frozenset[str], column: str) -> str:
    if value.strip() not in allowed:
        raise BadInput(f"{excerpt(value)} is not one of {', '.join(sorted(allowed))}", field=column)
    return value.strip()


def _pence(value: str, column: str) -> int:
    try:
        pounds = Decimal(value.strip())
    except InvalidOperation:
        raise BadInput(f"{excerpt(value)} is not an amount in pounds", field=column) from None
    try:
        pence = pounds * 100
        whole = pence.is_finite() and pence == pence.to_integral_value()
    except ArithmeticError:  # decimal's signals: a signalling NaN, an exponent out of range
        whole = False
    if not whole:
        raise BadInput(f"{excerpt(value)} is not an amount in pounds and pence", field=column)
    if abs(pence) > AVRO_LONG_MAX:
        raise BadInput(f"{excerpt(value)} is too large an amount", field=column)
    return int(pence)


def _weeks(value: str, column: str) -> float:
    try:
        weeks = float(value.strip())
    except ValueError:
        raise BadInput(f"{excerpt(value)} is not a number of weeks", field=column) from None
    if not math.isfinite(weeks) or weeks < 0:
        raise BadInput(f"{excerpt(value)} is not a number of weeks >= 0", field=column)
    return weeks


def _count(value: str, column: str) -> int:
    try:
        count = int(value.strip())
    except ValueError:
        raise BadInput(f"{excerpt(value)} is not a whole number", field=column) from None
    if count < 0:
        raise BadInput(f"{excerpt(value)} is negative", field=column)
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


def read_snapshot(path: Path, max_row_chars: int = DEFAULT_MAX_ROW_CHARS) -> Iterator[RawRow]:
    """The data rows of a snapshot in file order, fields reordered to COLUMNS.

    Raises BadInput naming `header` if the header is not exactly the expected columns (or
    cannot be read). Blank lines are skipped. A row that cannot be read (not CSV, longer than
    `max_row_chars`) comes with its problem. A row over several lines (a quoted field with
    line breaks) that is not a valid row is taken for an unbalanced quote: its first line
    comes with the problem and the lines after it are read again as rows.
    """
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as source:
        records = CsvRecords(source, max_row_chars)
        header = records.next()
        if header is not None and header.problem is not None:
            raise BadInput(header.problem.reason, field="header")
        order = _column_order(None if header is None else header.fields)
        while (record := records.next()) is not None:
            if record.problem is None and len(record.lines) > 1:
                problem = _row_problem(_reordered(record, order))
                if problem is not None:
                    record = records.first_line_only(record, _unclosed_quote(record, problem))
            yield _reordered(record, order)


def _row_problem(row: RawRow) -> BadInput | None:
    try:
        parse_row(row.fields)
    except BadInput as problem:
        return problem
    return None


def _unclosed_quote(record: Record, problem: BadInput) -> BadInput:
    joined = len(record.lines) - 1
    reason = f"a quote on this line is not closed (with the next {joined} line(s): {problem})"
    return BadInput(reason, field="row")


def _reordered(record: Record, order: list[int]) -> RawRow:
    fields = record.fields
    if len(fields) == len(order):
        fields = [fields[index] for index in order]
    return RawRow(record.line, record.raw, fields, record.problem)


def _column_order(header: list[str] | None) -> list[int]:
    if header is None:
        raise BadInput("the file is empty", field="header")
    names = [name.strip().lstrip("\ufeff") for name in header]
    if sorted(names) != sorted(COLUMNS):
        expected = ", ".join(COLUMNS)
        raise BadInput(f"columns are {', '.join(names)}; expected {expected}", field="header")
    return [names.index(column) for column in COLUMNS]
