"""Decisions: match, possible match (for a coordinator to review) or new person, with reasons.

A score at or above `Thresholds.match` links; between `possible` and `match` it goes to review.
Some disagreements cap a pair at review however high the rest scores, because the model's
independence assumption fails for them: twins share birth date, family name and address and
differ only in given name; a parent and a child named after them differ only in birth date;
two different national identifiers mean two people unless an agency keyed one wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.identity.linkage.comparison import Level
from streams.identity.linkage.model import WeightedComparison

_CAPPING_DISAGREEMENTS = {
    "national_id": "different national identifiers",
    "given_name": "different given names (twins and siblings share the rest)",
    "birth_date": "different birth dates (a parent and a child may share the rest)",
}


class Outcome(StrEnum):
    """What the resolver decided about a record."""

    MATCH = "match"
    POSSIBLE_MATCH = "possible_match"
    NEW_PERSON = "new_person"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Score thresholds (sums of log2 match weights).

    Two records picked at random are the same person with prior log2 odds of about -14 in a
    population of tens of thousands of records, so a score of 20 means posterior odds of about
    2^6 (a probability near 0.985) before the caveats are applied; 12 means it is still more
    likely than not two people, but worth a coordinator's look.
    """

    match: float = 20.0
    possible: float = 12.0

    def __post_init__(self) -> None:
        if self.possible > self.match:
            raise ValueError("the possible-match threshold must not exceed the match threshold")


@dataclass(frozen=True, slots=True)
class Evidence:
    """How a new record compares with the closest record of one known person."""

    person_root: str
    candidate_record_id: str
    comparisons: tuple[WeightedComparison, ...]

    @property
    def score(self) -> float:
        """The sum of the fields' match weights."""
        return sum(c.weight for c in self.comparisons)

    @property
    def caveats(self) -> tuple[str, ...]:
        """Disagreements that keep this pair from being linked without review."""
        return tuple(
            _CAPPING_DISAGREEMENTS[c.field]
            for c in self.comparisons
            if c.level is Level.DIFFERENT and c.field in _CAPPING_DISAGREEMENTS
        )

    def outcome(self, thresholds: Thresholds) -> Outcome:
        """What this evidence alone supports."""
        if self.score >= thresholds.match and not self.caveats:
            return Outcome.MATCH
        if self.score >= thresholds.possible:
            return Outcome.POSSIBLE_MATCH
        return Outcome.NEW_PERSON

    def to_dict(self, person_id: str) -> dict[str, Any]:
        """JSON-able, for the decision record a coordinator reads."""
        return {
            "person_id": person_id,
            "candidate_record_id": self.candidate_record_id,
            "score": round(self.score, 2),
            "fields": [c.to_dict() for c in self.comparisons],
            "caveats": list(self.caveats),
        }


@dataclass(frozen=True)
class Decision:
    """Which person a record belongs to, and why.

    `person_id` is the record's person after the decision. `reason` says in words what decided
    it; `evidence` is the best-scoring comparison (for a match, the one that linked; for a
    possible match, the person to review; for a new person, the closest one, if any).
    `merged_person_ids` are persons that this record showed to be the same and that were
    joined into `person_id`.
    """

    record_id: str
    person_id: str
    outcome: Outcome
    reason: str
    evidence: dict[str, Any] | None = None
    merged_person_ids: tuple[str, ...] = ()

    @property
    def score(self) -> float | None:
        """The best candidate's score, when there was one."""
        return None if self.evidence is None else float(self.evidence["score"])

    @property
    def review_person_id(self) -> str | None:
        """For a possible match: the person a coordinator should compare this record with."""
        if self.outcome is not Outcome.POSSIBLE_MATCH or self.evidence is None:
            return None
        return str(self.evidence["person_id"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the decision log on Kafka."""
        return {
            "record_id": self.record_id,
            "person_id": self.person_id,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "evidence": self.evidence,
            "merged_person_ids": list(self.merged_person_ids),
        }
