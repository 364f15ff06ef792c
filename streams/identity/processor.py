"""Identity: which person an agency record belongs to, and every event re-keyed by person.

Three handlers, each the agent `streams/topology.py` names, all over frames (README, "Identity
resolution"):
- `identity-router` on `record-frames` (the agency topics' partitions): an event whose records
  are linked and unchanged (`known_records`) goes straight to `person-events`; the rest go to
  the one-partition `identity-input`;
- `identity` resolves those with the Fellegi-Sunter `Resolver`, whose state lives in Faust
  tables on that one partition, records the decisions, and sends the events on to
  `person-events` keyed by person; coordinators' and erasure commands come the same way;
- `identity-links` keeps record id -> person id and fingerprint (`record-links`, the router's
  and the lookup's table) on the agency topics' partitions, from the decisions.

Decisions and merges are events on Kafka: `identity-decisions` (per record) and
`identity-changes` (per person: the records linked to it and why; merges into another person,
splits, erasures), which the timeline applies. An HL7 A40 joins the prior hospital number's
person here; coordinators' merges, splits and erasures are `commands`.
"""

from __future__ import annotations

from typing import Any

import faust
import orjson
from mode import BaseSignalT

from backbone.codec import AvroCodec
from backbone.contracts import REVIEW_DECISION
from backbone.errors import BadInput
from backbone.frames import FramedEvent
from backbone.identity_commands import decode_command, encode_command, is_command
from backbone.logging import get_logger
from backbone.metrics import EVENTS_IN, EVENTS_OUT, labelled
from streams.framing.batched_table import BatchedTable
from streams.framing.outbox import FrameOutbox
from streams.identity.commands import IdentityCommands
from streams.identity.known_records import fingerprint, fingerprint_of_details, known_person
from streams.identity.linkage import Decision, Outcome, Resolver, ResolverState, person_id
from streams.identity.messages import decode_decision, encode_change, encode_decision
from streams.operations.dead_letters import DeadLetters
from streams.topology import Channels, Tables

log = get_logger(__name__)
PROCESSOR = "identity"
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


def person_event(framed: FramedEvent, person: str, household: dict[str, str]) -> FramedEvent:
    """The agency event as `person-events` carries it: keyed by person, household attached."""
    return FramedEvent(
        key=person.encode(),
        value=framed.value,
        headers={**framed.headers, "household": orjson.dumps(household)},
        source_topic=framed.source_topic,
        source_offset=framed.source_offset,
    )


class Identity:
    """Resolves every agency record to a person and forwards its events by person id."""

    def __init__(
        self,
        channels: Channels,
        tables: Tables,
        codec: AvroCodec,
        dead_letters: DeadLetters,
        partitions: int,
    ) -> None:
        self.codec = codec
        self.dead_letters = dead_letters
        # record id (keyed hash) -> {"person_id", "fingerprint"}: the router's and the lookup's.
        self.links = tables.batched(tables.record_links)
        # The resolver's tables and the members of each person live on the one partition of
        # identity-input: every candidate is local, whichever worker holds that partition.
        self.state = ResolverState(
            records=tables.batched(tables.linkage_records),
            # In memory, rebuilt from linkage-records when partitions are (re)assigned: a
            # changelog of its own cost five Kafka writes per new record (README).
            blocks={},
            national_ids=tables.batched(tables.linkage_national_ids),
            parents=tables.batched(tables.linkage_parents),
            person_national_ids=tables.batched(tables.linkage_person_national_ids),
            counters=tables.batched(tables.linkage_counters),
            apart=tables.batched(tables.linkage_apart),
        )
        self.members = tables.batched(tables.linkage_members)
        # Possible matches waiting for a coordinator: review id (the record id) -> the case.
        self.reviews = tables.batched(tables.review_queue)
        self.resolver = Resolver(state=self.state)
        self.index_current = False
        self.commands = IdentityCommands(self)
        self.identity_input = channels.identity_input
        self.person_events_topic = channels.person_events.get_topic_name()
        self.person_events = FrameOutbox(channels.person_events, partitions, codec)
        self.decisions = FrameOutbox(channels.identity_decisions, partitions, codec)
        self.changes = FrameOutbox(channels.identity_changes, partitions, codec)
        self.to_resolver = FrameOutbox(channels.identity_input, 1, codec)

    async def on_record_frame(self, event: faust.EventT[bytes]) -> None:
        """The router's agent: a frame of agency events from `record-frames`."""
        frame = await self.dead_letters.decode_frame(PROCESSOR, event)
        if frame is not None:
            await self.route(frame, event.message.topic)

    async def on_decisions(self, event: faust.EventT[bytes]) -> None:
        """The links' agent: a frame of decisions from `identity-decisions`."""
        frame = await self.dead_letters.decode_frame(f"{PROCESSOR}-links", event)
        rejected: list[tuple[bytes, str]] = []
        for framed in frame or []:
            try:
                decision = decode_decision(self.codec, framed.value)
            except BadInput as exc:
                rejected.append((framed.value, f"undecodable: {exc}"))
                continue
            self.keep_link(decision)
        self.links.flush()
        for raw, reason in rejected:
            await self.dead_letters.send(f"{PROCESSOR}-links", raw, reason, event.message.topic)

    def index_outdated(
        self, sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        """Another worker may have resolved records while this one did not hold the resolver's
        partition: rebuild the blocking index before the next event. Every table view's read
        cache goes too: the tables are being recovered."""
        self.index_current = False
        BatchedTable.forget_all()

    async def route(self, frame: list[FramedEvent], source: str) -> None:
        """Send each event of a frame to `person-events` if its records are known and
        unchanged, else to the resolver; order within each destination is kept."""
        for framed in frame:
            record = await self._decode(framed, source)
            if record is None:
                continue
            agency = record["envelope"]["agency"]
            labelled(EVENTS_IN, PROCESSOR, agency).inc()
            known = known_person(record, self.links)
            if known is None:
                self.to_resolver.add(framed)
            else:
                self.person_events.add(person_event(framed, known.person_id, known.household))
                labelled(EVENTS_OUT, PROCESSOR, agency, self.person_events_topic).inc()
        await self.to_resolver.send()
        await self.person_events.send()

    async def on_resolver_input(self, event: faust.EventT[bytes]) -> None:
        """A frame of events to resolve, or a command (an IdentityCommand, told from a frame
        by its writer schema): a coordinator's review decision, merge or split, an erasure."""
        if not self.index_current:
            # Streams run after the tables' recovery: linkage-records is complete.
            await self.state.rebuild_index()
            self.index_current = True
        outcome = None
        if is_command(self.codec, event.value):
            try:
                command = decode_command(self.codec, event.value)
            except BadInput as exc:
                reason = f"undecodable: {exc}"
                await self.dead_letters.send(PROCESSOR, event.value, reason, event.message.topic)
                return
            if command["command"] == REVIEW_DECISION:
                self.decide_review(command)
            else:
                outcome = self.commands.apply(command)
        else:
            frame = await self.dead_letters.decode_frame(PROCESSOR, event)
            for framed in frame or []:
                # Decoded by the router already: a failure here cannot happen but for a
                # frame written by something else, which the router would have refused too.
                record = self.codec.decode(framed.value).record
                self.identify(framed, record)
        # No await from the first table write to here: Faust writes each changelog on the
        # partition of the event being processed (the one partition of identity-input).
        for table in self._tables():
            table.flush()
        for outbox in (self.person_events, self.decisions, self.changes):
            await outbox.send()
        if outcome is not None:
            self.commands.answer(command, outcome)

    def _tables(self) -> list[Any]:
        state = self.state
        return [
            *(state.records, state.national_ids, state.parents, state.person_national_ids),
            *(state.counters, state.apart, self.members, self.reviews),
        ]

    async def _decode(self, framed: FramedEvent, source: str) -> dict[str, Any] | None:
        try:
            return self.codec.decode(framed.value).record
        except BadInput as exc:
            await self.dead_letters.send(PROCESSOR, framed.value, f"undecodable: {exc}", source)
            return None

    def identify(self, framed: FramedEvent, record: dict[str, Any]) -> None:
        """Resolve the event's subject (and household) and send it on, keyed by person id."""
        envelope = record["envelope"]
        subject = envelope["subject"]
        agency = envelope["agency"]
        self._record(self.resolver.resolve(subject), agency, fingerprint(subject))
        relationships: dict[str, str] = {}
        for member in record.get("household") or []:
            member_subject = member["subject"]
            decision = self.resolver.resolve(member_subject)
            self._record(decision, agency, fingerprint(member_subject))
            relationships[member_subject["record_id"]] = member["relationship"]
        prior_record_id = record.get("merged_record_id")
        if prior_record_id:
            self._join_hospital_records(subject["record_id"], prior_record_id)
        # Asked after every resolution: a household member's record may have merged persons.
        person = self.resolver.person_of(subject["record_id"])
        household = {
            self.resolver.person_of(record_id): relationship
            for record_id, relationship in relationships.items()
        }
        self.person_events.add(person_event(framed, person, household))
        labelled(EVENTS_OUT, PROCESSOR, agency, self.person_events_topic).inc()

    def _join_hospital_records(self, record_id: str, prior_record_id: str) -> None:
        """HL7 A40: the hospital merged a prior hospital number into this one: one person."""
        if prior_record_id not in self.state.records:
            # Never seen: nothing of it to move. Its own events, should any come, link to
            # this person the usual way.
            log.info("merged_record_unknown", record_id=record_id)
            return
        clusters = self.resolver.clusters
        roots = [clusters.root(record_id), clusters.root(prior_record_id)]
        if roots[0] != roots[1]:
            self.join_persons(roots, {"basis": "deterministic", "reason": "HL7 A40"})

    def _record(self, decision: Decision, agency: str, details: str) -> None:
        """Publish what a decision changed: the record's person and fingerprint (always: the
        router sent it here because it was new or changed), a new link, merged persons."""
        members: list[str] = self.members.get(decision.person_id) or []
        for absorbed in decision.merged_person_ids:
            members = self._merge(absorbed, decision.person_id, decision.reason, members)
        self.send_decision(decision.record_id, decision.person_id, details)
        link = {"record_id": decision.record_id, "agency": agency, **link_of(decision)}
        # Sent for a record seen before too: a worker that died after writing the tables and
        # before sending this left the timeline without it, and the frame comes here again.
        self.send_change(decision.person_id, {"change": "link", "link": link})
        if decision.record_id in members and not decision.merged_person_ids:
            return  # a record seen before, on the person it already belongs to
        if decision.record_id not in members:
            members = [*members, decision.record_id]
        self.members[decision.person_id] = members
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

    def _merge(self, absorbed: str, survivor: str, reason: str, members: list[str]) -> list[str]:
        """Move the absorbed person's records onto the survivor; returns the survivor's."""
        moved: list[str] = self.members.get(absorbed) or []
        if absorbed in self.members:
            del self.members[absorbed]
        for record_id in moved:
            self.send_decision(record_id, survivor)
        self.send_change(absorbed, {"change": "merge", "into": survivor, "reason": reason})
        log.info("persons_merged", absorbed=absorbed, survivor=survivor)
        return [*members, *(record_id for record_id in moved if record_id not in members)]

    async def request_review_decision(
        self, review_id: str, decision: str, reason: str, coordinator: str
    ) -> None:
        """Queue a coordinator's decision on a possible match for the resolver's agent."""
        command = {
            "command": REVIEW_DECISION,
            "review_id": review_id,
            "decision": decision,
            "reason": reason,
            "coordinator": coordinator,
        }
        await self.identity_input.send(
            key=review_id.encode(), value=encode_command(self.codec, command)
        )

    def decide_review(self, command: dict[str, Any]) -> None:
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
        survivor = self.join_persons(roots, {"basis": "coordinator", "reason": reason})
        link = {**case, "basis": "coordinator", "outcome": "match", "reason": reason}
        link.pop("review_id", None)
        self.send_change(survivor, {"change": "link", "link": link})

    def join_persons(self, roots: list[str], link: dict[str, Any]) -> str:
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
                self.send_change(absorbed, {"change": "link", "link": relinked})
            members = self._merge(absorbed, survivor, link["reason"], members)
        self.members[survivor] = members
        return survivor

    def send_decision(
        self, record_id: str, person: str | None, details: str | None = None, **extra: Any
    ) -> None:
        """Queue a record's person (None: erased) for `identity-decisions`; without `details`
        the fingerprint is that of the record's latest stored version."""
        if person is not None and details is None:
            stored = self.state.records.get(record_id)
            details = fingerprint_of_details(stored["versions"][-1]) if stored else None
        value = {"record_id": record_id, "person_id": person, "fingerprint": details, **extra}
        self.decisions.add(FramedEvent(record_id.encode(), encode_decision(self.codec, value), {}))

    def send_change(self, person: str, change: dict[str, Any]) -> None:
        """Queue a change of a person for `identity-changes`."""
        value = encode_change(self.codec, {"person_id": person, **change})
        self.changes.add(FramedEvent(person.encode(), value, {}))

    def keep_link(self, decision: dict[str, Any]) -> None:
        """Apply a decision to `record-links`: the record's person and fingerprint, or none."""
        record_id = decision["record_id"]
        if decision["person_id"] is None:
            if record_id in self.links:
                del self.links[record_id]  # erased: a tombstone
            return
        link = {"person_id": decision["person_id"], "fingerprint": decision.get("fingerprint")}
        if self.links.get(record_id) != link:
            self.links[record_id] = link
