"""Identity: which person an agency record belongs to, and every event re-keyed by person.

Three agents (README, "Identity resolution on one partition"):
- `identity-forward` moves every agency event onto the one-partition `identity-input` topic;
- `identity` resolves each event's subject (and the household members a social care event
  lists) with the Fellegi-Sunter `Resolver`, whose state lives in Faust tables on that one
  partition, records the decision, and sends the event on to `person-events` keyed by person;
- `identity-links` keeps record id -> person id (the lookup) on the agency topics' partitions,
  from the decisions keyed by record id.

Decisions and merges are events on Kafka: `identity-decisions` (per record, for the lookup) and
`identity-changes` (per person: the records linked to it and why; merges into another person,
splits, erasures), which the timeline processor applies. The changes someone asks for (a
coordinator's merge or split, an erasure) are commands on `identity-input`, applied by
`streams/identity/commands.py`; an HL7 A40 joins the prior hospital number's person here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import faust
from mode import BaseSignalT

from backbone.contracts import IDENTITY_COMMAND_HEADER
from backbone.logging import get_logger
from backbone.metrics import EVENTS_IN, EVENTS_OUT
from backbone.topics import Topics
from streams.identity.commands import IdentityCommands
from streams.identity.linkage import Decision, Outcome, Resolver, ResolverState, person_id
from streams.operations.dead_letters import DeadLetters

log = get_logger(__name__)
PROCESSOR = "identity"
# Header of a coordinator's review decision on identity-input (the resolver's one writer).
REVIEW_DECISION = "review_decision"
# Field levels that say nothing for a pair, or against it: not "agreeing" in a link's story.
_NOT_AGREEING = frozenset(("different", "missing"))


def link_of(decision: Decision) -> dict[str, Any]:
    """How a record came to its person, as `GET /persons/{id}/links` shows it.

    `deterministic`: the same record id or national identifier; `probabilistic`: a score at or
    above the match threshold, with the fields that agreed; `first_record`: the record started
    this person (a possible match says whom a coordinator should compare it with).
    """
    evidence = decision.evidence
    if decision.outcome is Outcome.MATCH and evidence is not None:
        agreeing = [f["field"] for f in evidence["fields"] if f["level"] not in _NOT_AGREEING]
        basis: dict[str, Any] = {
            "basis": "probabilistic",
            "score": evidence["score"],
            "agreeing_fields": agreeing,
        }
    elif decision.outcome is Outcome.MATCH:
        basis = {"basis": "deterministic"}
    else:
        basis = {"basis": "first_record", "review_person_id": decision.review_person_id}
    return {
        **basis,
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "evidence": evidence,
    }


class Identity:
    """Resolves every agency record to a person and forwards its events by person id."""

    def __init__(self, app: faust.App, topics: Topics, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters
        # record id (keyed hash) -> person id; co-partitioned with the agency topics' keys.
        self.links = app.Table("record-links", default=None)
        # The resolver's tables and the members of each person live on the one partition of
        # identity-input: every candidate is local, whichever worker holds that partition.
        self.state = ResolverState(
            records=app.Table("linkage-records", default=None, partitions=1),
            # In memory, rebuilt from linkage-records when partitions are (re)assigned: a
            # changelog of its own cost five Kafka writes per new record (README,
            # "Performance of the identity partition").
            blocks={},
            national_ids=app.Table("linkage-national-ids", default=None, partitions=1),
            parents=app.Table("linkage-parents", default=None, partitions=1),
            person_national_ids=app.Table(
                "linkage-person-national-ids", default=None, partitions=1
            ),
            counters=app.Table("linkage-counters", default=None, partitions=1),
            apart=app.Table("linkage-apart", default=None, partitions=1),
        )
        self.members = app.Table("linkage-members", default=None, partitions=1)
        # Possible matches waiting for a coordinator: review id (the record id) -> the case.
        self.reviews = app.Table("review-queue", default=None, partitions=1)
        self.resolver = Resolver(state=self.state)
        self.index_current = False
        app.on_partitions_assigned.connect(self._index_outdated)
        self.commands = IdentityCommands(self)
        self.person_events = app.topic(
            topics.person_events, key_serializer="raw", value_serializer="raw"
        )
        self.identity_input = app.topic(
            topics.identity_input, partitions=1, key_serializer="raw", value_serializer="raw"
        )
        self.decisions = app.topic(
            topics.identity_decisions, key_serializer="raw", value_serializer="json"
        )
        self.changes = app.topic(
            topics.identity_changes, key_serializer="raw", value_serializer="json"
        )
        agency_events = app.topic(
            *topics.all_agency_events(), key_serializer="raw", value_serializer="raw"
        )

        async def forward(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self.identity_input.send(
                    key=event.key, value=event.value, headers=event.headers
                )
                yield None

        async def identify(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                if not self.index_current:
                    # Streams run after the tables' recovery: linkage-records is complete.
                    await self.state.rebuild_index()
                    self.index_current = True
                headers = event.headers or {}
                if REVIEW_DECISION in headers:
                    await self.decide_review(json.loads(headers[REVIEW_DECISION]))
                elif IDENTITY_COMMAND_HEADER in headers:
                    await self.commands.apply(json.loads(headers[IDENTITY_COMMAND_HEADER]))
                else:
                    await self.identify(event)
                yield None

        async def keep_links(stream: faust.StreamT[dict[str, Any]]) -> AsyncIterator[None]:
            async for decision in stream:
                if decision["person_id"] is not None:
                    self.links[decision["record_id"]] = decision["person_id"]
                elif decision["record_id"] in self.links:
                    del self.links[decision["record_id"]]  # erased: a tombstone
                yield None

        app.agent(agency_events, name=f"{PROCESSOR}-forward")(forward)
        app.agent(self.identity_input, name=PROCESSOR)(identify)
        app.agent(self.decisions, name=f"{PROCESSOR}-links")(keep_links)

    def _index_outdated(
        self, sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        """Another worker may have resolved records while this one did not hold the resolver's
        partition: rebuild the blocking index before the next event."""
        self.index_current = False

    async def identify(self, event: faust.EventT[bytes]) -> None:
        """Resolve the event's subject (and household) and send it on, keyed by person id."""
        record = await self.dead_letters.decode(PROCESSOR, event)
        if record is None:
            return
        envelope = record["envelope"]
        subject = envelope["subject"]
        agency = envelope["agency"]
        EVENTS_IN.labels(PROCESSOR, agency).inc()
        await self._record(self.resolver.resolve(subject), agency)
        relationships: dict[str, str] = {}
        for member in record.get("household") or []:
            await self._record(self.resolver.resolve(member["subject"]), agency)
            relationships[member["subject"]["record_id"]] = member["relationship"]
        prior_record_id = record.get("merged_record_id")
        if prior_record_id:
            await self._join_hospital_records(subject["record_id"], prior_record_id)
        # Asked after every resolution: a household member's record may have merged persons.
        person_id = self.resolver.person_of(subject["record_id"])
        household = {
            self.resolver.person_of(record_id): relationship
            for record_id, relationship in relationships.items()
        }
        await self.person_events.send(
            key=person_id.encode(),
            value=event.value,
            headers={
                "event_id": envelope["event_id"].encode(),
                "household": json.dumps(household).encode(),
            },
        )
        EVENTS_OUT.labels(PROCESSOR, agency, self.person_events.get_topic_name()).inc()
        log.debug("event_identified", event_id=envelope["event_id"], person_id=person_id)

    async def _join_hospital_records(self, record_id: str, prior_record_id: str) -> None:
        """HL7 A40: the hospital merged a prior hospital number into this one: one person."""
        if prior_record_id not in self.state.records:
            # Never seen: nothing of it to move. Its own events, should any come, link to
            # this person the usual way.
            log.info("merged_record_unknown", record_id=record_id)
            return
        clusters = self.resolver.clusters
        roots = [clusters.root(record_id), clusters.root(prior_record_id)]
        if roots[0] != roots[1]:
            await self.join_persons(roots, {"basis": "deterministic", "reason": "HL7 A40"})

    async def _record(self, decision: Decision, agency: str) -> None:
        """Publish what a decision changed: a newly linked record, and any merged persons."""
        members: list[str] = self.members.get(decision.person_id) or []
        for absorbed in decision.merged_person_ids:
            members = await self._merge(absorbed, decision.person_id, decision.reason, members)
        if decision.record_id in members and not decision.merged_person_ids:
            return  # a record seen before, on the person it already belongs to
        if decision.record_id not in members:
            members = [*members, decision.record_id]
        self.members[decision.person_id] = members
        await self.send_decision(decision.record_id, decision.person_id)
        link = {"record_id": decision.record_id, "agency": agency, **link_of(decision)}
        await self.send_change(decision.person_id, {"change": "link", "link": link})
        if decision.outcome is Outcome.POSSIBLE_MATCH:
            self.reviews[decision.record_id] = {"review_id": decision.record_id, **link}
        log.info(
            "identity_decided",
            record_id=decision.record_id,
            person_id=decision.person_id,
            outcome=decision.outcome.value,
            reason=decision.reason,
            merged_person_ids=list(decision.merged_person_ids),
        )

    async def _merge(
        self, absorbed: str, survivor: str, reason: str, members: list[str]
    ) -> list[str]:
        """Move the absorbed person's records onto the survivor; returns the survivor's."""
        moved: list[str] = self.members.get(absorbed) or []
        if absorbed in self.members:
            del self.members[absorbed]
        for record_id in moved:
            await self.send_decision(record_id, survivor)
        await self.send_change(absorbed, {"change": "merge", "into": survivor, "reason": reason})
        log.info("persons_merged", absorbed=absorbed, survivor=survivor)
        return [*members, *(record_id for record_id in moved if record_id not in members)]

    async def request_review_decision(
        self, review_id: str, decision: str, reason: str, coordinator: str
    ) -> None:
        """Queue a coordinator's decision on a possible match for the resolver's agent."""
        command = {"review_id": review_id, "decision": decision, "reason": reason}
        await self.identity_input.send(
            key=review_id.encode(),
            value=b"",
            headers={REVIEW_DECISION: json.dumps({**command, "coordinator": coordinator}).encode()},
        )

    async def decide_review(self, command: dict[str, Any]) -> None:
        """Apply a coordinator's review decision: `match` joins the two persons."""
        case = self.reviews.get(command["review_id"])
        if case is None:
            return  # decided already (a repeated request, or a replay)
        del self.reviews[command["review_id"]]
        log.info("review_decided", **command)
        if command["decision"] != "match":
            return
        clusters = self.resolver.clusters
        roots = [
            clusters.root(case["record_id"]),
            clusters.root(case["evidence"]["candidate_record_id"]),
        ]
        if roots[0] == roots[1]:
            return
        reason = f"coordinator {command['coordinator']}: {command['reason']}"
        survivor = await self.join_persons(roots, {"basis": "coordinator", "reason": reason})
        link = {**case, "basis": "coordinator", "outcome": "match", "reason": reason}
        link.pop("review_id", None)
        await self.send_change(survivor, {"change": "link", "link": link})

    async def join_persons(self, roots: list[str], link: dict[str, Any]) -> str:
        """Make the persons of these root records one; returns the surviving person id.

        For a merge someone asserted (a coordinator, a hospital's A40) rather than one the
        resolver found: each record of an absorbed person is relinked with `link` (basis, who,
        why), sent before the merge on the absorbed person's key so the timeline applies it
        first and moves it along with the rest.
        """
        clusters = self.resolver.clusters
        survivor_root = roots[0]
        for root in roots[1:]:
            survivor_root = clusters.join(survivor_root, clusters.root(root))
        survivor = person_id(survivor_root)
        members: list[str] = self.members.get(survivor) or []
        for absorbed in dict.fromkeys(person_id(root) for root in roots):
            if absorbed == survivor:
                continue
            for record_id in self.members.get(absorbed) or []:
                relinked = {"record_id": record_id, "outcome": "match", **link}
                await self.send_change(absorbed, {"change": "link", "link": relinked})
            members = await self._merge(absorbed, survivor, link["reason"], members)
        self.members[survivor] = members
        return survivor

    async def send_decision(self, record_id: str, person_id: str) -> None:
        value = {"record_id": record_id, "person_id": person_id}
        await self.decisions.send(key=record_id.encode(), value=value)

    async def send_change(self, person_id: str, change: dict[str, Any]) -> None:
        await self.changes.send(key=person_id.encode(), value={"person_id": person_id, **change})
