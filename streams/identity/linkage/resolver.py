"""The incremental resolver: takes records one at a time and says which person each is.

Per record: deterministic links first (a record id already seen, a national identifier already
held by a person), then Fellegi-Sunter scoring against the records sharing a blocking key,
best record per person. A match links the record to that person; every other person that also
matches without caveat is merged in (two clusters meeting through a new record). A possible
match starts a new person and names the candidate for review.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from streams.identity.linkage.blocking import blocking_keys
from streams.identity.linkage.comparison import FieldComparison, Level, compare
from streams.identity.linkage.decision import Decision, Evidence, Outcome, Thresholds
from streams.identity.linkage.model import DEFAULT_MODEL, MatchModel
from streams.identity.linkage.record import LinkageRecord
from streams.identity.linkage.state import Clusters, ResolverState, person_id

MAX_CANDIDATES_PER_KEY = 200  # the newest holders of a key; keeps a very common key bounded


class Resolver:
    """Links records to persons one at a time, keeping its state in `ResolverState` tables."""

    def __init__(
        self,
        model: MatchModel = DEFAULT_MODEL,
        thresholds: Thresholds | None = None,
        state: ResolverState | None = None,
    ) -> None:
        self.model = model
        self.thresholds = thresholds or Thresholds()
        self.state = state or ResolverState()
        self.clusters = Clusters(self.state)

    def resolve(self, subject: Mapping[str, Any]) -> Decision:
        """Decide the person of one event's subject, update the state and explain why."""
        record = LinkageRecord.from_subject(subject)
        linked = self._deterministic_root(record)
        evidence = self._evidence(record, exclude_root=linked[0] if linked else None)
        self.state.remember(record)
        self.state.index(record.record_id, blocking_keys(record))
        best = evidence[0] if evidence else None
        if linked is not None:
            root, reason = linked  # the scores were against other persons: not the evidence
            decision = self._link(record, root, reason, None, evidence)
        elif best is not None and best.outcome(self.thresholds) is Outcome.MATCH:
            reason = f"score {best.score:.1f} at or above the match threshold"
            decision = self._link(record, best.person_root, reason, best, evidence)
        else:
            decision = self._new_person(record, best)
        if record.national_id:
            self.clusters.add_national_id(self.clusters.root(record.record_id), record.national_id)
        return decision

    def person_of(self, record_id: str) -> str:
        """The person id a record belongs to now (after any later merges)."""
        return person_id(self.clusters.root(record_id))

    def _deterministic_root(self, record: LinkageRecord) -> tuple[str, str] | None:
        if record.record_id in self.state.records:
            return self.clusters.root(record.record_id), "same record id seen before"
        holder = self.state.national_ids.get(record.national_id or "")
        if holder is not None:
            return self.clusters.root(holder), "same national identifier"
        return None

    def _evidence(self, record: LinkageRecord, exclude_root: str | None) -> list[Evidence]:
        """The best comparison with each candidate person, best first."""
        best_by_root: dict[str, Evidence] = {}
        for candidate_id in self._candidates(record):
            root = self.clusters.root(candidate_id)
            if root == exclude_root:
                continue
            for version in self.state.versions(candidate_id):
                found = self._weigh(record, version, root)
                if root not in best_by_root or found.score > best_by_root[root].score:
                    best_by_root[root] = found
        return sorted(best_by_root.values(), key=lambda e: e.score, reverse=True)

    def _candidates(self, record: LinkageRecord) -> set[str]:
        found: set[str] = set()
        for key in blocking_keys(record):
            found.update(self.state.blocks.get(key, [])[-MAX_CANDIDATES_PER_KEY:])
        found.discard(record.record_id)
        return found

    def _weigh(self, record: LinkageRecord, candidate: LinkageRecord, root: str) -> Evidence:
        comparisons = self._with_person_national_ids(compare(record, candidate), record, root)
        return Evidence(root, candidate.record_id, self.model.weigh(comparisons))

    def _with_person_national_ids(
        self, comparisons: Iterable[FieldComparison], record: LinkageRecord, root: str
    ) -> list[FieldComparison]:
        """A national id differing from any the person holds disagrees, not just the record's."""
        known = self.clusters.national_ids_of(root)
        result = list(comparisons)
        if record.national_id and known and record.national_id not in known:
            note = "the person holds a different national identifier"
            result[0] = FieldComparison("national_id", Level.DIFFERENT, note)
        return result

    def _link(
        self,
        record: LinkageRecord,
        root: str,
        reason: str,
        best: Evidence | None,
        evidence: list[Evidence],
    ) -> Decision:
        """Join the record to `root`, then merge every other person it also plainly matches.

        `best` is the evidence shown: the pair that linked, or None for a deterministic link.
        """
        root = self.clusters.join(root, self.clusters.root(record.record_id))
        persons = [root]
        for other in evidence:
            other_root = self.clusters.root(other.person_root)
            if other_root == root or other.outcome(self.thresholds) is not Outcome.MATCH:
                continue
            if self._compatible(root, other_root):
                persons.append(other_root)
                root = self.clusters.join(root, other_root)
                reason += f"; merged a person matching at score {other.score:.1f}"
        merged = tuple(person_id(p) for p in persons if p != root)
        shown = best.to_dict(person_id(best.person_root)) if best else None
        return Decision(record.record_id, person_id(root), Outcome.MATCH, reason, shown, merged)

    def _compatible(self, root: str, other_root: str) -> bool:
        """Two persons with different national identifiers, or that a coordinator split, are
        never merged automatically."""
        if self.clusters.apart(root, other_root):
            return False
        mine = set(self.clusters.national_ids_of(root))
        theirs = set(self.clusters.national_ids_of(other_root))
        return not (mine and theirs and mine.isdisjoint(theirs))

    def _new_person(self, record: LinkageRecord, best: Evidence | None) -> Decision:
        # No `parents` entry: a record absent there is its own root (one changelog write less).
        root = self.clusters.root(record.record_id)
        shown = best.to_dict(person_id(best.person_root)) if best else None
        if best is not None and best.outcome(self.thresholds) is not Outcome.NEW_PERSON:
            caveats = "; ".join(best.caveats) or "score below the match threshold"
            reason = f"score {best.score:.1f}: review ({caveats})"
            return Decision(
                record.record_id, person_id(root), Outcome.POSSIBLE_MATCH, reason, shown
            )
        reason = "no candidate" if best is None else f"best score {best.score:.1f} too low"
        return Decision(record.record_id, person_id(root), Outcome.NEW_PERSON, reason, shown)
