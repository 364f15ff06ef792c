"""Which events skip the resolver, and state written once per key per frame."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from streams.framing.batched_table import BatchedTable
from streams.identity.known_records import fingerprint, known_person


def subject(record_id: str, family_name: str = "Okafor", **changes: Any) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "id_type": "case_person_id",
        "national_id": None,
        "family_name": family_name,
        "given_name": "grace",
        "birth_date": date(1990, 4, 2),
        "sex": "F",
        "postcode": "AB12CD",
        **changes,
    }


def event(who: dict[str, Any], household: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"envelope": {"subject": who}, "household": household}


def linked(*subjects: dict[str, Any], person: str = "P1") -> dict[str, Any]:
    return {s["record_id"]: {"person_id": person, "fingerprint": fingerprint(s)} for s in subjects}


def test_a_linked_unchanged_record_bypasses_the_resolver() -> None:
    grace = subject("r1")
    known = known_person(event(grace), linked(grace))
    assert known is not None
    assert known.person_id == "P1"


def test_a_new_record_goes_to_the_resolver() -> None:
    assert known_person(event(subject("r1")), {}) is None


def test_a_changed_name_or_birth_date_re_resolves_the_record() -> None:
    grace = subject("r1")
    links = linked(grace)
    assert known_person(event(subject("r1", family_name="Mensah")), links) is None
    assert known_person(event(subject("r1", birth_date=date(1990, 2, 4))), links) is None
    # Spelling the same name differently normalises to the same attributes: no change.
    assert known_person(event(subject("r1", family_name="OKAFOR")), links) is not None


def test_a_household_needs_every_member_linked() -> None:
    parent, child = subject("r1"), subject("r2", given_name="daniel")
    household = [{"subject": child, "relationship": "child"}]
    assert known_person(event(parent, household), linked(parent)) is None
    links = {**linked(parent), **linked(child, person="P2")}
    known = known_person(event(parent, household), links)
    assert known is not None
    assert known.household == {"P2": "child"}


def test_an_hl7_merge_always_goes_to_the_resolver() -> None:
    grace = subject("r1")
    record = {**event(grace), "merged_record_id": "r0"}
    assert known_person(record, linked(grace)) is None


class CountingDict(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__()
        self.writes: Counter[str] = Counter()

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes[key] += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes[key] += 1
        super().__delitem__(key)


def test_a_batched_table_writes_each_key_once_per_flush() -> None:
    table = CountingDict()
    table["gone"] = 1
    batched = BatchedTable(table)
    for number in range(100):
        batched["person"] = number
        assert batched["person"] == number  # reads see the frame's own writes
    del batched["gone"]
    assert "gone" not in batched
    assert table["gone"] == 1  # nothing reaches the table before the flush
    assert batched.flush() == 2
    assert table == {"person": 99}
    assert table.writes == Counter({"person": 1, "gone": 2})
    assert batched.flush() == 0
