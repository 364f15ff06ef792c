"""Field comparisons: how well two records agree on each identifying detail, as a level.

Each field has a few ordered levels (exact, close, ..., different) and `missing` when either
record lacks the field; the model gives every level its own weight. Names are compared in both
orders, because agencies do swap given and family name, and given names through nicknames.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from rapidfuzz.distance import JaroWinkler

from streams.identity.linkage.nicknames import same_given_name
from streams.identity.linkage.normalise import postcode_district, sounds_alike
from streams.identity.linkage.record import LinkageRecord

CLOSE_SIMILARITY = 0.92  # a typo or two in a name of ordinary length
LOOSE_SIMILARITY = 0.80  # related spellings; weak evidence on its own


class Level(StrEnum):
    """How two values compare; which levels a field uses is listed in FIELD_LEVELS."""

    EXACT = "exact"
    NICKNAME = "nickname"
    CLOSE = "close"
    SIMILAR = "similar"
    DAY_MONTH_SWAPPED = "day_month_swapped"
    ONE_PART_DIFFERS = "one_part_differs"
    DISTRICT = "district"
    DIFFERENT = "different"
    MISSING = "missing"


FIELD_LEVELS: dict[str, tuple[Level, ...]] = {
    "national_id": (Level.EXACT, Level.DIFFERENT),
    "given_name": (Level.EXACT, Level.NICKNAME, Level.CLOSE, Level.SIMILAR, Level.DIFFERENT),
    "family_name": (Level.EXACT, Level.CLOSE, Level.SIMILAR, Level.DIFFERENT),
    "birth_date": (
        Level.EXACT,
        Level.DAY_MONTH_SWAPPED,
        Level.ONE_PART_DIFFERS,
        Level.DIFFERENT,
    ),
    "postcode": (Level.EXACT, Level.DISTRICT, Level.DIFFERENT),
    "sex": (Level.EXACT, Level.DIFFERENT),
}
_NAME_RANK = {Level.EXACT: 0, Level.NICKNAME: 1, Level.CLOSE: 1, Level.SIMILAR: 2}


@dataclass(frozen=True, slots=True)
class FieldComparison:
    """The level two records reach on one field, with what was measured."""

    field: str
    level: Level
    note: str = ""


def compare(first: LinkageRecord, second: LinkageRecord) -> tuple[FieldComparison, ...]:
    """Every field of two records compared, in FIELD_LEVELS order."""
    given, family = compare_names(first, second)
    return (
        _compare_exact("national_id", first.national_id, second.national_id),
        given,
        family,
        compare_birth_dates(first.birth_date, second.birth_date),
        compare_postcodes(first.postcode, second.postcode),
        _compare_exact("sex", first.sex, second.sex),
    )


def compare_names(
    first: LinkageRecord, second: LinkageRecord
) -> tuple[FieldComparison, FieldComparison]:
    """Given and family name, in the order (straight or swapped) in which they agree better."""
    given = _given_name_level(first.given_name, second.given_name)
    family = _family_name_level(first.family_name, second.family_name)
    if _rank(given) + _rank(family) == 0:
        return given, family
    swapped_given = _given_name_level(first.given_name, second.family_name)
    swapped_family = _family_name_level(first.family_name, second.given_name)
    if _rank(swapped_given) + _rank(swapped_family) < _rank(given) + _rank(family):
        note = "given and family name swapped"
        return (
            FieldComparison("given_name", swapped_given.level, note),
            FieldComparison("family_name", swapped_family.level, note),
        )
    return given, family


def _rank(comparison: FieldComparison) -> int:
    """0 for agreement, 2 for a loose one, 4 for a disagreement (missing counts as one)."""
    if comparison.level is Level.MISSING:
        return 3
    return _NAME_RANK.get(comparison.level, 4)


def _given_name_level(first: str | None, second: str | None) -> FieldComparison:
    if first is None or second is None:
        return FieldComparison("given_name", Level.MISSING)
    if first == second:
        return FieldComparison("given_name", Level.EXACT)
    if same_given_name(first, second):
        return FieldComparison("given_name", Level.NICKNAME, f"{first} ~ {second}")
    return _similarity_level("given_name", first, second)


def _family_name_level(first: str | None, second: str | None) -> FieldComparison:
    if first is None or second is None:
        return FieldComparison("family_name", Level.MISSING)
    if first == second:
        return FieldComparison("family_name", Level.EXACT)
    return _similarity_level("family_name", first, second)


def _similarity_level(field: str, first: str, second: str) -> FieldComparison:
    similarity = JaroWinkler.similarity(first, second)
    note = f"jaro-winkler {similarity:.2f}"
    if similarity >= CLOSE_SIMILARITY:
        return FieldComparison(field, Level.CLOSE, note)
    if similarity >= LOOSE_SIMILARITY or sounds_alike(first, second):
        return FieldComparison(field, Level.SIMILAR, note)
    return FieldComparison(field, Level.DIFFERENT, note)


def compare_birth_dates(first: date | None, second: date | None) -> FieldComparison:
    """Exact, day and month swapped, one of year/month/day (or one year digit) off, different."""
    if first is None or second is None:
        return FieldComparison("birth_date", Level.MISSING)
    if first == second:
        return FieldComparison("birth_date", Level.EXACT)
    if (first.year, first.month, first.day) == (second.year, second.day, second.month):
        return FieldComparison("birth_date", Level.DAY_MONTH_SWAPPED)
    parts_agreeing = sum(
        (first.year == second.year, first.month == second.month, first.day == second.day)
    )
    if parts_agreeing == 2 and _one_digit_apart(first.year, second.year):
        return FieldComparison("birth_date", Level.ONE_PART_DIFFERS)
    return FieldComparison("birth_date", Level.DIFFERENT)


def _one_digit_apart(first: int, second: int) -> bool:
    """Same year, or a keying slip in one of its digits (1984 / 1948 is two, so not)."""
    return sum(a != b for a, b in zip(f"{first:04d}", f"{second:04d}", strict=True)) <= 1


def compare_postcodes(first: str | None, second: str | None) -> FieldComparison:
    """The full postcode, else the district (a move nearby), else different."""
    if first is None or second is None:
        return FieldComparison("postcode", Level.MISSING)
    if first == second:
        return FieldComparison("postcode", Level.EXACT)
    if postcode_district(first) == postcode_district(second):
        return FieldComparison("postcode", Level.DISTRICT)
    return FieldComparison("postcode", Level.DIFFERENT)


def _compare_exact(field: str, first: str | None, second: str | None) -> FieldComparison:
    if first is None or second is None:
        return FieldComparison(field, Level.MISSING)
    return FieldComparison(field, Level.EXACT if first == second else Level.DIFFERENT)
