"""The Fellegi-Sunter model: m and u probabilities per comparison level, and match weights.

m is how often records of the same person reach a level, u how often records of two different
people do; the level's match weight is log2(m / u), and a pair's score is the sum of its
fields' weights (a missing field weighs 0). `DEFAULT_MODEL` holds general-purpose values;
`streams.identity.linkage.training` estimates better ones from a deployment's own records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from streams.identity.linkage.comparison import FIELD_LEVELS, FieldComparison, Level


@dataclass(frozen=True, slots=True)
class LevelProbabilities:
    """m: P(level | same person); u: P(level | different people)."""

    m: float
    u: float

    @property
    def weight(self) -> float:
        """The match weight log2(m / u): positive is evidence for a match."""
        return math.log2(self.m / self.u)


@dataclass(frozen=True, slots=True)
class WeightedComparison:
    """A field's level with the weight it added to the score."""

    field: str
    level: Level
    weight: float
    note: str = ""

    def to_dict(self) -> dict[str, str | float]:
        """JSON-able, for the decision's explanation."""
        return {
            "field": self.field,
            "level": self.level.value,
            "weight": round(self.weight, 2),
            "note": self.note,
        }


@dataclass(frozen=True)
class MatchModel:
    """m and u per field and level."""

    probabilities: Mapping[str, Mapping[Level, LevelProbabilities]]

    def weigh(self, comparisons: Iterable[FieldComparison]) -> tuple[WeightedComparison, ...]:
        """Each comparison with its match weight."""
        return tuple(
            WeightedComparison(c.field, c.level, self.weight(c.field, c.level), c.note)
            for c in comparisons
        )

    def weight(self, field: str, level: Level) -> float:
        """The match weight of one level; a missing value is no evidence either way."""
        if level is Level.MISSING:
            return 0.0
        return self.probabilities[field][level].weight

    def to_dict(self) -> dict[str, dict[str, dict[str, float]]]:
        """JSON-able: field -> level -> m, u, weight."""
        return {
            field: {
                level.value: {"m": p.m, "u": p.u, "weight": round(p.weight, 3)}
                for level, p in levels.items()
            }
            for field, levels in self.probabilities.items()
        }


def model_from_table(table: Mapping[str, Mapping[Level, tuple[float, float]]]) -> MatchModel:
    """A model from field -> level -> (m, u), checking every field has all of its levels."""
    probabilities: dict[str, dict[Level, LevelProbabilities]] = {}
    for field, levels in FIELD_LEVELS.items():
        given = table[field]
        missing = [level.value for level in levels if level not in given]
        if missing:
            raise ValueError(f"{field}: no m/u for level(s) {', '.join(missing)}")
        probabilities[field] = {level: LevelProbabilities(*given[level]) for level in levels}
    return MatchModel(probabilities)


# General-purpose starting values (m, u) in the range published for person linkage on
# administrative data; a deployment should re-estimate them from its own records.
DEFAULT_MODEL = model_from_table(
    {
        "national_id": {Level.EXACT: (0.995, 1e-6), Level.DIFFERENT: (0.005, 0.999999)},
        "given_name": {
            Level.EXACT: (0.86, 0.015),
            Level.NICKNAME: (0.05, 0.002),
            Level.CLOSE: (0.05, 0.004),
            Level.SIMILAR: (0.02, 0.03),
            Level.DIFFERENT: (0.02, 0.949),
        },
        "family_name": {
            Level.EXACT: (0.82, 0.004),
            Level.CLOSE: (0.08, 0.003),
            Level.SIMILAR: (0.02, 0.02),
            Level.DIFFERENT: (0.08, 0.973),
        },
        "birth_date": {
            Level.EXACT: (0.95, 4e-5),
            Level.DAY_MONTH_SWAPPED: (0.015, 2e-6),
            Level.ONE_PART_DIFFERS: (0.03, 0.003),
            Level.DIFFERENT: (0.005, 0.996958),
        },
        "postcode": {
            Level.EXACT: (0.7, 5e-4),
            Level.DISTRICT: (0.1, 0.01),
            Level.DIFFERENT: (0.2, 0.9895),
        },
        "sex": {Level.EXACT: (0.98, 0.5), Level.DIFFERENT: (0.02, 0.5)},
    }
)
