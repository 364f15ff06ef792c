"""Probabilistic record linkage (Fellegi-Sunter), pure Python, for the identity processor.

`Resolver.resolve(subject)` takes one event's subject at a time and returns a `Decision`
(match / possible_match / new_person, the person id, and why). Its state lives in
`ResolverState`, a handful of dict-like tables that Faust tables can stand in for.
"""

from streams.identity.linkage.comparison import FIELD_LEVELS, FieldComparison, Level, compare
from streams.identity.linkage.decision import Decision, Evidence, Outcome, Thresholds
from streams.identity.linkage.model import (
    DEFAULT_MODEL,
    LevelProbabilities,
    MatchModel,
    model_from_table,
)
from streams.identity.linkage.record import LinkageRecord
from streams.identity.linkage.resolver import Resolver
from streams.identity.linkage.state import Clusters, ResolverState, person_id
from streams.identity.linkage.training import estimate_model

__all__ = [
    "DEFAULT_MODEL",
    "FIELD_LEVELS",
    "Clusters",
    "Decision",
    "Evidence",
    "FieldComparison",
    "Level",
    "LevelProbabilities",
    "LinkageRecord",
    "MatchModel",
    "Outcome",
    "Resolver",
    "ResolverState",
    "Thresholds",
    "compare",
    "estimate_model",
    "model_from_table",
    "person_id",
]
