"""The coordinator API's identity changes: merging two persons, splitting one (api.md).

The page runs on the worker holding the identity resolver's one partition (any other worker
forwards it there), sends the change to the resolver as a command on `identity-input` and
answers with the outcome: the resulting person ids, or `202` with the command id when the
resolver has not applied it within a few seconds (it will: the command is on Kafka).
"""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from backbone.tokens import Coordinator
from streams.api.coordinator import ApiError, CoordinatorApi, json_body, reason_of
from streams.identity.commands import CommandOutcome

# Roles that only read: they may not change who is who.
READ_ONLY_ROLES = frozenset({"auditor"})


class IdentityPages:
    """Registers `POST /persons/merge` and `POST /persons/{id}/split` on the coordinator API."""

    def __init__(self, api: CoordinatorApi) -> None:
        self.api = api
        api.post_page("/persons/merge", self.merge)
        api.post_page("/persons/{person_id}/split", self.split)

    async def merge(self, view: View, request: Request) -> Response:
        """`POST /persons/merge` `{"person_ids": [a, b], "reason"}` -> the resulting person."""

        async def answer(caller: Coordinator) -> Response:
            body = await json_body(request)
            command = {
                "command": "merge",
                "person_ids": _two_persons(body),
                "reason": reason_of(body),
            }
            return await self._command(view, request, caller, command)

        return await self.api.coordinator_request(view, request, "POST /persons/merge", answer)

    async def split(self, view: View, request: Request, person_id: str) -> Response:
        """`POST /persons/{id}/split` `{"records": [record_id, ...], "reason"}` -> both persons."""

        async def answer(caller: Coordinator) -> Response:
            body = await json_body(request)
            command = {
                "command": "split",
                "person_id": person_id,
                "records": _records(body),
                "reason": reason_of(body),
            }
            return await self._command(view, request, caller, command)

        return await self.api.coordinator_request(
            view, request, "POST /persons/{person_id}/split", answer
        )

    async def _command(
        self, view: View, request: Request, caller: Coordinator, command: dict[str, Any]
    ) -> Response:
        """Send `command` to the resolver (on the worker holding it) and answer its outcome."""
        if caller.role in READ_ONLY_ROLES:
            raise ApiError(403, "forbidden", f"role {caller.role} may not change identities")

        async def here() -> Response:
            commands = self.api.identity.commands
            command_id, outcome = await commands.request({**command, "coordinator": caller.name})
            return _answer(view, command_id, outcome)

        # The resolver's tables have one partition: any key names the worker holding them.
        return await self.api.on_owner(
            self.api.identity.members.table, "queue", view, request, here
        )


def _two_persons(body: dict[str, Any]) -> list[str]:
    person_ids = body.get("person_ids")
    if (
        not isinstance(person_ids, list)
        or len(person_ids) != 2
        or not all(isinstance(each, str) and each for each in person_ids)
    ):
        raise ApiError(400, "invalid_body", "person_ids: a list of two person ids is required")
    if person_ids[0] == person_ids[1]:
        raise ApiError(400, "invalid_body", "person_ids: two different persons are required")
    return person_ids


def _records(body: dict[str, Any]) -> list[str]:
    records = body.get("records")
    if (
        not isinstance(records, list)
        or not records
        or not all(isinstance(each, str) and each for each in records)
    ):
        raise ApiError(
            400, "invalid_body", "records: a list of record ids (from /links) is required"
        )
    return list(dict.fromkeys(records))


def _answer(view: View, command_id: str, outcome: CommandOutcome | None) -> Response:
    if outcome is None:
        return view.json({"command_id": command_id, "status": "queued"}, status=202)
    return view.json(outcome.body, status=outcome.status)
