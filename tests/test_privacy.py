"""Identifiers become keyed hashes; names and postcodes are normalised before comparing."""

from __future__ import annotations

import pytest

from backbone.pseudonyms import Pseudonymiser, normalise_postcode, normalise_text


def test_the_same_identifier_written_two_ways_hashes_the_same() -> None:
    p = Pseudonymiser(b"k" * 32)
    assert p.national_id("QQ 12 34 56 C") == p.national_id("qq123456c")
    assert p.record_id("health", "hospital_number", "mr 448812") == p.record_id(
        "health", "hospital_number", "MR448812"
    )


def test_hashes_depend_on_the_key_agency_and_identifier_type() -> None:
    one, other = Pseudonymiser(b"k" * 32), Pseudonymiser(b"j" * 32)
    assert one.national_id("QQ123456C") != other.national_id("QQ123456C")
    assert one.record_id("health", "mr", "1") != one.record_id("housing", "mr", "1")
    assert one.record_id("health", "mr", "1") != one.record_id("health", "ni", "1")
    assert len(one.national_id("QQ123456C")) == 64


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Pseudonymiser(b"short")


def test_normalisation_folds_case_accents_and_spaces() -> None:
    assert normalise_text("  Ó  Súilleabháin ") == "o suilleabhain"
    assert normalise_text("ZOË") == "zoe"
    assert normalise_postcode(" ls6  1aa ") == "LS61AA"
