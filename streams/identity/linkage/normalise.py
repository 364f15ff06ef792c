"""The forms linkage compares: name keys, phonetic codes, postcode districts, birth date keys.

`backbone.pseudonyms` already case-folds names and removes accents and spaces from postcodes;
this adds what only comparison needs, such as dropping the punctuation that one agency keeps
and another does not (`O'Brien` / `OBRIEN`).
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache

import jellyfish

from backbone.pseudonyms import normalise_postcode, normalise_text

_NOT_LETTERS = re.compile(r"[^a-z ]+")
_INWARD_CODE_LENGTH = 3  # a UK postcode ends in a 3-character inward code (`1AA`)


def name_tokens(value: str | None) -> list[str]:
    """The words of a name, letters only: `Mary-Ann O'Brien` -> `["mary", "ann", "obrien"]`."""
    if not value:
        return []
    text = normalise_text(value).replace("-", " ")
    return _NOT_LETTERS.sub("", text).split()


def given_name_key(value: str | None) -> str | None:
    """The first given name, which agencies agree on more often than on middle names."""
    tokens = name_tokens(value)
    return tokens[0] if tokens else None


def family_name_key(value: str | None) -> str | None:
    """The whole family name without spaces, so `Smith Jones` and `Smith-Jones` agree."""
    tokens = name_tokens(value)
    return "".join(tokens) if tokens else None


def postcode_key(value: str | None) -> str | None:
    """A postcode upper case without spaces, or None when empty."""
    if not value:
        return None
    return normalise_postcode(value) or None


def postcode_district(postcode: str) -> str:
    """The outward code (`LS6` of `LS62AB`): people who move often stay in the district."""
    if len(postcode) > _INWARD_CODE_LENGTH + 1:
        return postcode[:-_INWARD_CODE_LENGTH]
    return postcode


@cache
def sound_code(name: str) -> str:
    """Soundex: tolerant of most typos after the first letter, so it suits blocking keys."""
    return str(jellyfish.soundex(name))


@cache
def sounds_alike(first: str, second: str) -> bool:
    """Whether two names sound the same (Metaphone): `Thompson` / `Tomson`."""
    return bool(jellyfish.metaphone(first) == jellyfish.metaphone(second))


def birth_date_key(birth_date: date) -> str:
    """Year with day and month in order of size, so a day/month swap gives the same key."""
    low, high = sorted((birth_date.day, birth_date.month))
    return f"{birth_date.year:04d}-{low:02d}-{high:02d}"
