"""Identity changes someone asks for, applied by the identity resolver's one writer.

A merge, a split or an erasure is a command (`backbone.identity.IdentityCommand`, one per
message, backbone/identity_commands.py) on `identity-input`, the one-partition topic the
resolver reads: applied in order with the records it resolves, on the worker that
holds the resolver's tables. The API page that sent it runs on that same worker (it is routed
to the owner of the resolver's partition) and waits for the outcome, so it can answer with the
resulting person ids; a command not applied in time stays queued and is answered `202`.
An erasure comes from `backbone erase` (cli/erasure.py), which waits for its confirmation
on `identity-decisions`.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backbone.contracts import ERASE
from backbone.identity_commands import encode_command
from backbone.logging import get_logger
from streams.identity.linkage import person_id

if TYPE_CHECKING:
    from streams.identity.processor import Identity

log = get_logger(__name__)
COMMAND_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CommandOutcome:
    """What a command did: an HTTP status and the answer's body."""

    status: int
    body: dict[str, Any]

    @classmethod
    def refused(cls, status: int, code: str, detail: str) -> CommandOutcome:
        """A command the resolver could not apply, with the field that made it so."""
        return cls(status, {"error": code, "detail": detail})


@dataclass
class IdentityCommands:
    """Sends identity commands to the resolver's agent, applies them there, and hands the
    outcome back to the waiting request."""

    identity: Identity
    _waiting: dict[str, asyncio.Future[CommandOutcome]] = field(default_factory=dict)

    async def request(self, command: dict[str, Any]) -> tuple[str, CommandOutcome | None]:
        """Queue `command` for the resolver; its id and outcome (None: not applied in time)."""
        command_id = str(uuid.uuid4())
        outcome: asyncio.Future[CommandOutcome] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = outcome
        try:
            value = encode_command(self.identity.codec, {**command, "command_id": command_id})
            await self.identity.identity_input.send(key=command_id.encode(), value=value)
            return command_id, await asyncio.wait_for(outcome, COMMAND_TIMEOUT_S)
        except TimeoutError:
            return command_id, None
        finally:
            self._waiting.pop(command_id, None)

    def apply(self, command: dict[str, Any]) -> CommandOutcome:
        """Apply one command read from identity-input (the resolver's agent calls this and
        then `answer`, once the command's changes are on their way)."""
        kind = command.get("command")
        if kind == "merge":
            outcome = self.merge(command)
        elif kind == "split":
            outcome = self.split(command)
        elif kind == ERASE:
            outcome = self.erase(command)
        else:
            outcome = CommandOutcome.refused(400, "invalid_command", f"command: unknown {kind}")
        log.info("identity_command_applied", command=kind, status=outcome.status)
        return outcome

    def answer(self, command: dict[str, Any], outcome: CommandOutcome) -> None:
        """Hand the outcome to the request waiting for it on this worker, if any."""
        waiting = self._waiting.get(command.get("command_id", ""))
        if waiting is not None and not waiting.done():
            waiting.set_result(outcome)

    def merge(self, command: dict[str, Any]) -> CommandOutcome:
        """A coordinator's merge of two persons: one person, whose links say who and why."""
        identity = self.identity
        roots: list[str] = []
        for asked in command["person_ids"]:
            records = identity.members.get(asked)
            if not records:
                return CommandOutcome.refused(
                    404, "not_found", f"person_ids: no person {asked} (or merged into another)"
                )
            roots.append(identity.resolver.clusters.root(records[0]))
        link = {
            "basis": "coordinator",
            "outcome": "match",
            "coordinator": command["coordinator"],
            "reason": command["reason"],
        }
        survivor = identity.join_persons(roots, link)
        merged = sorted({person_id(root) for root in roots} - {survivor})
        return CommandOutcome(200, {"person_id": survivor, "merged_person_ids": merged})

    def split(self, command: dict[str, Any]) -> CommandOutcome:
        """A coordinator's split: the listed records of a person become a person of their own.

        The group holding the person's first record keeps the person id; the other group's
        records are re-decided onto the new person, whose timeline takes their events, and the
        resolver keeps the two apart from then on.
        """
        identity = self.identity
        asked = command["person_id"]
        members: list[str] = identity.members.get(asked) or []
        if not members:
            return CommandOutcome.refused(
                404, "not_found", f"no person {asked} (or merged into another)"
            )
        leaving = set(command["records"])
        refused = _refused_split(asked, members, leaving)
        if refused is not None:
            return refused
        roots = identity.resolver.clusters.split(members, leaving)
        staying, split_off = (person_id(root) for root in roots)
        groups = {
            staying: [record_id for record_id in members if record_id not in leaving],
            split_off: [record_id for record_id in members if record_id in leaving],
        }
        moved_to = split_off if staying == asked else staying
        for person, records in groups.items():
            identity.members[person] = records
        link = {
            "basis": "coordinator",
            "outcome": "split",
            "coordinator": command["coordinator"],
            "reason": command["reason"],
            "split_from": asked,
        }
        for record_id in groups[moved_to]:
            identity.send_decision(record_id, moved_to)
        # On the asked person's key: its timeline relinks the listed records, then moves the
        # moved group's events and links to their new person.
        change = {
            "change": "split",
            "records": groups[moved_to],
            "into": moved_to,
            "listed": groups[split_off],
            "link": link,
        }
        identity.send_change(asked, change)
        log.info("person_split", person_id=asked, staying=staying, split_off=split_off)
        return CommandOutcome(200, {"person_id": split_off, "remaining_person_id": staying})

    def erase(self, command: dict[str, Any]) -> CommandOutcome:
        """Forget the person an agency record belongs to: every record of theirs leaves the
        resolver's tables, the lookup and the review queue, and their timeline is deleted;
        deleting from a table writes a tombstone to its changelog, so a worker recovering on
        empty state does not bring any of it back. Confirmed on `identity-decisions`."""
        identity = self.identity
        record_id = command["record_id"]
        if record_id not in identity.state.records:
            self._confirm_erasure(command, None, [])
            return CommandOutcome.refused(404, "not_found", "no person has that identifier")
        erased = identity.resolver.person_of(record_id)
        records: list[str] = identity.members.get(erased) or [record_id]
        _delete(identity.members, erased)
        for case_id, case in list(identity.reviews.items()):
            candidate = (case.get("evidence") or {}).get("candidate_record_id")
            if case_id in records or candidate in records:
                _delete(identity.reviews, case_id)
        identity.state.forget(set(records))
        # Every person id the records ever had: each was the person of a root among them.
        for person in dict.fromkeys([erased, *(person_id(each) for each in records)]):
            identity.send_change(person, {"change": "erase"})
        self._confirm_erasure(command, erased, records)
        log.info("person_erased", records=len(records))
        return CommandOutcome(200, {"person_id": erased, "records": len(records)})

    def _confirm_erasure(
        self, command: dict[str, Any], erased: str | None, records: list[str]
    ) -> None:
        """Unlink every record (the lookup's table deletes them), the asked one last, with the
        command id for `backbone erase` to read."""
        asked = command["record_id"]
        for record_id in [*(each for each in records if each != asked), asked]:
            confirmation: dict[str, Any] = {}
            if record_id == asked:
                confirmation = {
                    "command_id": command["command_id"],
                    "erased_person_id": erased,
                    "records": len(records),
                }
            self.identity.send_decision(record_id, None, **confirmation)


def _delete(table: Any, key: str) -> None:
    if key in table:
        del table[key]


def _refused_split(asked: str, members: list[str], leaving: set[str]) -> CommandOutcome | None:
    strangers = sorted(leaving - set(members))
    if strangers:
        return CommandOutcome.refused(
            400, "invalid_body", f"records: {strangers[0]} is not a record of person {asked}"
        )
    if leaving >= set(members):
        return CommandOutcome.refused(
            400, "invalid_body", "records: at least one record must stay with the person"
        )
    return None
