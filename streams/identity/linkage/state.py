"""The resolver's state, behind dict-like tables so Faust tables can hold it.

Every table is a `MutableMapping` with JSON-able values, and values are always replaced, never
changed in place, because a Faust table only writes its changelog on assignment.

- records: record id -> {"seq": arrival number, "versions": [record details, ...]}
- blocks: blocking key -> record ids holding it (the identity processor keeps it in memory and
  rebuilds it from `records` with `rebuild_index`: five changelog writes less per new record)
- national_ids: keyed national identifier -> a record id of the person holding it
- parents: record id -> parent record id (union-find; a person's root record is its own parent,
  absent for a record that has always been its own)
- person_national_ids: root record id -> the national identifiers of that person
- counters: "records" -> how many records have been stored (the next arrival number; counted
  here because the length of a table on disk is a scan of all of it)
- apart: root record id -> root record ids of persons a coordinator split from it, which the
  resolver must not join to it again
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.identity.linkage.blocking import blocking_keys
from streams.identity.linkage.record import LinkageRecord

_REBUILD_SLICE = 1000  # records indexed between two yields to the event loop
MAX_VERSIONS = 4  # a record's details as they changed (a married name, a move); the last few


@dataclass
class ResolverState:
    """The tables the resolver reads and writes; plain dicts unless given others."""

    records: MutableMapping[str, dict[str, Any]] = field(default_factory=dict)
    blocks: MutableMapping[str, list[str]] = field(default_factory=dict)
    national_ids: MutableMapping[str, str] = field(default_factory=dict)
    parents: MutableMapping[str, str] = field(default_factory=dict)
    person_national_ids: MutableMapping[str, list[str]] = field(default_factory=dict)
    counters: MutableMapping[str, int] = field(default_factory=dict)
    apart: MutableMapping[str, list[str]] = field(default_factory=dict)

    def versions(self, record_id: str) -> list[LinkageRecord]:
        """The details a record has been seen with, oldest first."""
        stored = self.records.get(record_id)
        if stored is None:
            return []
        return [LinkageRecord.from_state(version) for version in stored["versions"]]

    def remember(self, record: LinkageRecord) -> bool:
        """Store a record's details; False when exactly these were already stored."""
        stored = self.records.get(record.record_id)
        details = record.to_state()
        if stored is None:
            seq = self.counters.get("records") or 0
            self.records[record.record_id] = {"seq": seq, "versions": [details]}
            self.counters["records"] = seq + 1
            return True
        if details in stored["versions"]:
            return False
        versions = [*stored["versions"], details][-MAX_VERSIONS:]
        self.records[record.record_id] = {"seq": stored["seq"], "versions": versions}
        return True

    def index(self, record_id: str, keys: list[str]) -> None:
        """Add a record id under each of its blocking keys."""
        record_id = sys.intern(record_id)  # one string per record, however many keys hold it
        for key in keys:
            holders = self.blocks.get(key, [])
            if record_id not in holders:
                self.blocks[key] = [*holders, record_id]

    async def rebuild_index(self) -> None:
        """Make `blocks` again from `records`: every version's keys, records in arrival order.

        A key's holders come out in the order of their records' first arrival; a key that only
        a later version of a record brought is therefore placed a little earlier than it was
        indexed live, which matters only to a key with more holders than the resolver reads.
        Yields to the event loop every few records: a large state takes seconds, and the
        worker's heartbeats must go on meanwhile. Also moves the arrival counter past every
        stored record.
        """
        self.blocks.clear()
        stored: list[tuple[str, dict[str, Any]]] = []
        for number, item in enumerate(self.records.items()):
            stored.append(item)
            if number % _REBUILD_SLICE == 0:
                await asyncio.sleep(0)
        stored.sort(key=lambda item: int(item[1]["seq"]))
        for number, (record_id, value) in enumerate(stored):
            for version in value["versions"]:
                self.index(record_id, blocking_keys(LinkageRecord.from_state(version)))
            if number % _REBUILD_SLICE == 0:
                await asyncio.sleep(0)
        if stored:
            # Each table's changelog is written on its own: after a crash the counter can be
            # recovered behind the records. A reused arrival number would make a record
            # resolved again look older than a person's root, and change the person's id.
            next_seq = int(stored[-1][1]["seq"]) + 1
            if (self.counters.get("records") or 0) < next_seq:
                self.counters["records"] = next_seq

    def forget(self, record_ids: set[str]) -> None:
        """Erase records: their details, index entries, national identifiers, cluster links."""
        for record_id in record_ids:
            for version in self.versions(record_id):
                for key in blocking_keys(version):
                    holders = [held for held in self.blocks.get(key, []) if held != record_id]
                    _replace(self.blocks, key, holders)
                if version.national_id and self.national_ids.get(version.national_id) in record_ids:
                    del self.national_ids[version.national_id]
            for table in (self.records, self.parents, self.person_national_ids, self.apart):
                if record_id in table:
                    del table[record_id]
        for root, kept in list(self.apart.items()):
            _replace(self.apart, root, [other for other in kept if other not in record_ids])


def _replace(table: MutableMapping[str, list[str]], key: str, values: list[str]) -> None:
    """Write `values` under `key`, or delete the key when there are none left."""
    if values:
        if values != table.get(key):
            table[key] = values
    elif key in table:
        del table[key]


class Clusters:
    """Persons as union-find clusters of record ids over the state's `parents` table."""

    def __init__(self, state: ResolverState) -> None:
        self.state = state

    def root(self, record_id: str) -> str:
        """The root record of the record's person (the record itself when unlinked)."""
        parents = self.state.parents
        root = record_id
        while (parent := parents.get(root, root)) != root:
            root = parent
        while record_id != root:  # path compression: later look-ups take one step
            parent = parents.get(record_id, root)
            if parent != root:  # a table write is a changelog message: only when it changes
                parents[record_id] = root
            record_id = parent
        return root

    def national_ids_of(self, root: str) -> list[str]:
        """The national identifiers known for a person (by root record)."""
        return self.state.person_national_ids.get(root, [])

    def add_national_id(self, root: str, national_id: str) -> None:
        """Note a person's national identifier, and the person as its holder."""
        known = self.national_ids_of(root)
        if national_id not in known:
            self.state.person_national_ids[root] = [*known, national_id]
        self.state.national_ids.setdefault(national_id, root)

    def join(self, first_root: str, second_root: str) -> str:
        """Make two persons one; the earlier-seen root survives, so its person id lasts.

        A join overrides a split between the two (only someone's assertion joins persons
        kept apart: the resolver asks `apart` first).
        """
        if first_root == second_root:
            return first_root
        survivor, absorbed = sorted((first_root, second_root), key=self._seniority)
        self.state.parents[absorbed] = survivor  # the survivor, a root, needs no entry
        for national_id in self.state.person_national_ids.pop(absorbed, []):
            self.add_national_id(survivor, national_id)
        kept_apart = [*self.state.apart.pop(survivor, []), *self.state.apart.pop(absorbed, [])]
        others = [root for root in kept_apart if self.root(root) != survivor]
        if others:
            self.state.apart[survivor] = list(dict.fromkeys(others))
        return survivor

    def split(self, members: list[str], leaving: set[str]) -> tuple[str, str]:
        """Make the `leaving` records of one person (of `members`) a person of their own.

        Returns the roots of the records that stay and of those that leave. The group holding
        the person's root keeps it, and so its person id; the other group's root is its
        earliest-seen record. The two persons are kept apart from then on.
        """
        root = self.root(members[0])
        groups = (
            [record_id for record_id in members if record_id not in leaving],
            [record_id for record_id in members if record_id in leaving],
        )
        roots = tuple(
            root if root in group else min(group, key=self._seniority) for group in groups
        )
        national_ids = [self._national_ids_in(group) for group in groups]
        self.state.person_national_ids.pop(root, None)
        kept_apart = self.state.apart.pop(root, [])
        for group, group_root, own, others in zip(
            groups, roots, national_ids, reversed(national_ids), strict=True
        ):
            for record_id in group:
                self.state.parents[record_id] = group_root
            for national_id in own:
                self.add_national_id(group_root, national_id)
                if national_id not in others:
                    self.state.national_ids[national_id] = group_root
            if kept_apart:
                self.state.apart[group_root] = list(kept_apart)
        self.keep_apart(roots[0], roots[1])
        return roots[0], roots[1]

    def keep_apart(self, root: str, other_root: str) -> None:
        """Note that two persons are not the same, whatever their records say."""
        for one, other in ((root, other_root), (other_root, root)):
            known = self.state.apart.get(one, [])
            if other not in known:
                self.state.apart[one] = [*known, other]

    def apart(self, root: str, other_root: str) -> bool:
        """Whether a coordinator said these two persons (by root) are not the same."""
        return any(self.root(kept) == other_root for kept in self.state.apart.get(root, []))

    def _national_ids_in(self, records: list[str]) -> list[str]:
        found = (
            version.national_id
            for record_id in records
            for version in self.state.versions(record_id)
            if version.national_id
        )
        return list(dict.fromkeys(found))

    def _seniority(self, record_id: str) -> tuple[int, str]:
        stored = self.state.records.get(record_id)
        return (stored["seq"] if stored else 1 << 62, record_id)


def person_id(root_record_id: str) -> str:
    """The person id of a cluster: derived from its root record, so replays give the same."""
    return "P" + hashlib.sha256(f"person:{root_record_id}".encode()).hexdigest()[:24]
