"""Pseudonymisation: person identifiers leave a connector only as keyed hashes.

The hash is HMAC-SHA256 with the deployment's secret, so nobody without the secret can test a
guessed identifier against it. Values are normalised first (case, whitespace, diacritics) so the
same identifier written two ways hashes the same.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

_SPACES = re.compile(r"\s+")


def normalise_text(value: str) -> str:
    """Case-folded, accents removed, inner whitespace collapsed to one space."""
    decomposed = unicodedata.normalize("NFKD", value)
    without_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", without_marks.casefold()).strip()


def normalise_postcode(value: str) -> str:
    """Upper case with no spaces: `sw1a 1aa` and `SW1A1AA` compare equal."""
    return _SPACES.sub("", value).upper()


def normalise_identifier(value: str) -> str:
    """Identifiers compare without case or spaces: `ab 12 34 56 c` is `AB123456C`."""
    return _SPACES.sub("", value).upper()


class Pseudonymiser:
    """Turns identifiers into keyed hashes with one deployment secret."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        self._key = key

    def _digest(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def national_id(self, national_id: str) -> str:
        """The keyed hash of a national identifier, the same whichever agency holds it."""
        return self._digest("national_id", normalise_identifier(national_id))

    def record_id(self, agency: str, id_type: str, local_id: str) -> str:
        """The keyed hash of an agency's own identifier (hospital number, tenant ref, ...)."""
        return self._digest("record", agency, id_type, normalise_identifier(local_id))
