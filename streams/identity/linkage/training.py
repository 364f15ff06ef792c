"""Estimating m and u from a deployment's own records, without any labelled truth.

u comes from random pairs of records, which are almost all different people. m comes from
pairs that share a keyed national identifier, which are the same person whatever their other
details say; so how often their names, birth dates and postcodes disagree is how often the
records of one person do. (This assumes an agency holding the national identifier records the
other details no better or worse than one that does not.) Levels never seen keep a small floor,
so no weight is infinite.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import combinations

from streams.identity.linkage.comparison import FIELD_LEVELS, Level, compare
from streams.identity.linkage.model import DEFAULT_MODEL, LevelProbabilities, MatchModel
from streams.identity.linkage.record import LinkageRecord

# The least probability a level gets: unseen is not impossible. m has the higher floor because
# a few hundred same-person pairs cannot show a 1-in-1000 slip, but a million random pairs can.
M_FLOOR = 1e-3
U_FLOOR = 1e-6
MAX_PAIRS_PER_NATIONAL_ID = 10


def estimate_model(
    records: Sequence[LinkageRecord], *, random_pairs: int = 200_000, seed: int = 0
) -> MatchModel:
    """m from pairs sharing a national identifier, u from random pairs; national id kept."""
    m_counts = _level_counts(_same_national_id_pairs(records))
    u_counts = _level_counts(_random_pairs(records, random_pairs, random.Random(seed)))  # nosec B311 # seeded sampling of record pairs, not a secret
    probabilities = {"national_id": DEFAULT_MODEL.probabilities["national_id"]}
    for field, levels in FIELD_LEVELS.items():
        if field == "national_id":
            continue  # every m pair agrees on it by construction: keep the general values
        m = _shares(m_counts[field], levels, M_FLOOR)
        u = _shares(u_counts[field], levels, U_FLOOR)
        probabilities[field] = {level: LevelProbabilities(m[level], u[level]) for level in levels}
    return MatchModel(probabilities)


Pair = tuple[LinkageRecord, LinkageRecord]


def _same_national_id_pairs(records: Sequence[LinkageRecord]) -> list[Pair]:
    holders: dict[str, list[LinkageRecord]] = defaultdict(list)
    for record in records:
        if record.national_id:
            holders[record.national_id].append(record)
    pairs: list[Pair] = []
    for group in holders.values():
        pairs.extend(list(combinations(group, 2))[:MAX_PAIRS_PER_NATIONAL_ID])
    return pairs


def _random_pairs(records: Sequence[LinkageRecord], count: int, rng: random.Random) -> list[Pair]:
    if len(records) < 2:
        return []
    pairs = (rng.sample(range(len(records)), 2) for _ in range(count))
    return [(records[a], records[b]) for a, b in pairs]


def _level_counts(pairs: list[Pair]) -> dict[str, Counter[Level]]:
    counts: dict[str, Counter[Level]] = defaultdict(Counter)
    for first, second in pairs:
        for comparison in compare(first, second):
            if comparison.level is not Level.MISSING:
                counts[comparison.field][comparison.level] += 1
    return counts


def _shares(counts: Counter[Level], levels: tuple[Level, ...], floor: float) -> dict[Level, float]:
    total = sum(counts[level] for level in levels)
    if total == 0:
        return {level: 1.0 / len(levels) for level in levels}
    raw = {level: max(counts[level] / total, floor) for level in levels}
    norm = sum(raw.values())
    return {level: share / norm for level, share in raw.items()}
