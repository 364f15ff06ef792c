"""Blocking keys: which earlier records a new record is compared with, so none scans everyone.

A record is compared only with records sharing at least one key. The keys are chosen so that
each kind of noise leaves at least one intact: birth date with either name's sound (a typo,
a married name, a swapped order), birth date with postcode (any name change), and both names'
sounds with the birth year or the postcode district (a birth date typo). Birth dates enter
with day and month in size order, so a day/month swap keeps its keys.
"""

from __future__ import annotations

from streams.identity.linkage.nicknames import formal_names
from streams.identity.linkage.normalise import birth_date_key, postcode_district, sound_code
from streams.identity.linkage.record import LinkageRecord


def blocking_keys(record: LinkageRecord) -> list[str]:
    """Every blocking key of a record (none for a detail it lacks)."""
    names = _name_sounds(record)
    keys: list[str] = []
    if record.birth_date is not None:
        born = birth_date_key(record.birth_date)
        keys.extend(f"born+name:{born}:{name}" for name in names)
        if record.postcode:
            keys.append(f"born+postcode:{born}:{record.postcode}")
    pair = _name_pair(record)
    if pair and record.birth_date is not None:
        keys.append(f"names+year:{pair}:{record.birth_date.year}")
    if pair and record.postcode:
        keys.append(f"names+district:{pair}:{postcode_district(record.postcode)}")
    return keys


def _name_sounds(record: LinkageRecord) -> list[str]:
    """Sound codes of both names and of the given name's formal forms (`bill` -> william)."""
    sounds = set()
    if record.family_name:
        sounds.add(sound_code(record.family_name))
    if record.given_name:
        sounds.update(sound_code(name) for name in formal_names(record.given_name))
        sounds.add(sound_code(record.given_name))
    return sorted(sounds)


def _name_pair(record: LinkageRecord) -> str | None:
    """Both names' sounds in sorted order, so swapped given and family names agree."""
    if not (record.given_name and record.family_name):
        return None
    given = min(sound_code(name) for name in formal_names(record.given_name))
    return "+".join(sorted((given, sound_code(record.family_name))))
