"""The coordinator API's alert pages (README, "Coordinator API"): list, one alert, acknowledge,
resolve.

Every alert lives on the alerts topic's one partition, so every request is answered by the
worker owning it (forwarded there by CoordinatorApi.on_owner), which lists and filters its
table locally. A coordinator sees only alerts routed to one of their teams (403 otherwise).
Acknowledge and resolve are checked against the current state first (409 with that state for
a change it does not allow), produced as AlertEvents, and answered once the lifecycle agent has
applied them; changes are taken one at a time so two coordinators cannot both acknowledge.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.web import Request, Response, View

from backbone.tokens import Coordinator
from streams.alerting.lifecycle import (
    AlertState,
    Change,
    Status,
    detail,
    refusal,
    step_id,
    summary,
)
from streams.alerting.lifecycle_agent import AlertLifecycle
from streams.alerting.notifications.delivery_status import ESCALATED, OPEN, WITHDRAWN
from streams.alerting.rules import Severity
from streams.api.coordinator import ApiError, CoordinatorApi, json_body, limit_of, moment_of

# Any key finds the owner of a one-partition table; the list is asked for under this one.
ALL_ALERTS = "alerts"


class AlertApi:
    """Registers the alert pages on the coordinator API."""

    def __init__(
        self, api: CoordinatorApi, lifecycle: AlertLifecycle, change_timeout_s: float
    ) -> None:
        self.api = api
        self.lifecycle = lifecycle
        self._change_timeout_s = change_timeout_s
        self._changes = asyncio.Lock()
        api.page("/alerts", self.alerts)
        api.page("/alerts/{alert_id}", self.alert)
        api.post_page("/alerts/{alert_id}/acknowledge", self.acknowledge)
        api.post_page("/alerts/{alert_id}/resolve", self.resolve)

    async def alerts(self, view: View, request: Request) -> Response:
        """`GET /alerts?status=&severity=&rule=&since=&limit=&cursor=`: the caller's teams'
        alerts, oldest raised first."""

        async def answer(caller: Coordinator) -> Response:
            wanted = _filters(request)
            limit = limit_of(request)
            return await self.api.on_owner(
                self.lifecycle.table,
                ALL_ALERTS,
                view,
                request,
                lambda: self._page(view, caller, wanted, limit),
            )

        return await self.api.coordinator_request(view, request, "GET /alerts", answer)

    async def alert(self, view: View, request: Request, alert_id: str) -> Response:
        """`GET /alerts/{alert_id}`: the alert, its explanation and its state history."""

        async def answer(caller: Coordinator) -> Response:
            async def here() -> Response:
                return view.json(self._shown(self._visible(alert_id, caller)))

            return await self.api.on_owner(self.lifecycle.table, alert_id, view, request, here)

        return await self.api.coordinator_request(view, request, "GET /alerts/{id}", answer)

    async def acknowledge(self, view: View, request: Request, alert_id: str) -> Response:
        """`POST /alerts/{alert_id}/acknowledge` `{"note"}` (note optional)."""
        return await self._change(view, request, alert_id, Change.ACKNOWLEDGED)

    async def resolve(self, view: View, request: Request, alert_id: str) -> Response:
        """`POST /alerts/{alert_id}/resolve` `{"note"}` (note required: how it was resolved)."""
        return await self._change(view, request, alert_id, Change.RESOLVED)

    async def _change(
        self, view: View, request: Request, alert_id: str, change: Change
    ) -> Response:
        async def answer(caller: Coordinator) -> Response:
            async def here() -> Response:
                note = await _note(view, request, required=change is Change.RESOLVED)
                async with self._changes:
                    return await self._apply(view, caller, alert_id, change, note)

            return await self.api.on_owner(self.lifecycle.table, alert_id, view, request, here)

        action = (
            f"POST /alerts/{{id}}/{'acknowledge' if change is Change.ACKNOWLEDGED else 'resolve'}"
        )
        return await self.api.coordinator_request(view, request, action, answer)

    async def _apply(
        self, view: View, caller: Coordinator, alert_id: str, change: Change, note: str | None
    ) -> Response:
        state = self._visible(alert_id, caller)
        refused = refusal(state, change)
        if refused is not None:
            return _conflict(view, refused, self._shown(state))
        applied = await self.lifecycle.request(state, change, caller.name, note)
        try:
            await asyncio.wait_for(applied.wait(), self._change_timeout_s)
        except TimeoutError:
            # On Kafka already: the agent applies it when it gets there.
            return view.json(
                {"alert_id": alert_id, "change": change.value, "applied": False}, status=202
            )
        now = self.lifecycle.table[alert_id]
        mine = step_id(alert_id, change)
        if not any(entry["event_id"] == mine for entry in now["history"]):
            reason = refusal(now, change) or "the state changed meanwhile"
            return _conflict(view, reason, self._shown(now))
        return view.json(self._shown(now))

    async def _page(
        self, view: View, caller: Coordinator, wanted: dict[str, Any], limit: int
    ) -> Response:
        teams = set(caller.teams)
        selected = sorted(
            (
                state
                for state in self.lifecycle.table.values()
                if teams & set(state["teams"]) and _matches(state, wanted)
            ),
            key=_position,
        )
        page = selected[:limit]
        return view.json(
            {
                "alerts": [summary(state) for state in page],
                "next_cursor": _position(page[-1]) if len(selected) > limit else None,
            }
        )

    def _shown(self, state: AlertState) -> dict[str, Any]:
        """One alert as the API shows it: its detail and who was told of it so far."""
        stages = [OPEN, ESCALATED] if state["escalated"] else [OPEN]
        if state["status"] == Status.WITHDRAWN:
            stages.append(WITHDRAWN)
        deliveries = self.lifecycle.notifier.deliveries(state["alert_id"], state["teams"], stages)
        return {**detail(state), "deliveries": deliveries}

    def _visible(self, alert_id: str, caller: Coordinator) -> AlertState:
        state: AlertState | None = self.lifecycle.table.get(alert_id)
        if state is None:
            raise ApiError(404, "not_found", f"no alert {alert_id}")
        if not set(caller.teams) & set(state["teams"]):
            raise ApiError(403, "forbidden", f"alert {alert_id} is not routed to your teams")
        return state


def _filters(request: Request) -> dict[str, Any]:
    """The list's filters, each checked; errors name the parameter."""
    status = request.query.get("status")
    if status is not None and status not in set(Status):
        allowed = ", ".join(Status)
        raise ApiError(400, "invalid_parameter", f"status must be one of {allowed}")
    severity = request.query.get("severity")
    if severity is not None and severity not in set(Severity):
        allowed = ", ".join(Severity)
        raise ApiError(400, "invalid_parameter", f"severity must be one of {allowed}")
    return {
        "status": status,
        "severity": severity,
        "rule_id": request.query.get("rule"),
        "since": moment_of(request, "since"),
        "after": request.query.get("cursor"),
    }


def _matches(state: AlertState, wanted: dict[str, Any]) -> bool:
    return (
        all(
            wanted[name] is None or state[name] == wanted[name]
            for name in ("status", "severity", "rule_id")
        )
        and (wanted["since"] is None or state["raised_at"] >= wanted["since"])
        and (wanted["after"] is None or _position(state) > wanted["after"])
    )


def _position(state: AlertState) -> str:
    """A stable paging cursor: the alert's place in raised order."""
    return f"{state['raised_at']}|{state['alert_id']}"


async def _note(view: View, request: Request, *, required: bool) -> str | None:
    body = await json_body(request) if request.body_exists else {}
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise ApiError(400, "invalid_body", "note: must be a string")
    note = note.strip() if note else None
    if required and not note:
        raise ApiError(400, "invalid_body", "note: say how the alert was resolved")
    return note


def _conflict(view: View, reason: str, shown: dict[str, Any]) -> Response:
    """409 with the alert as it now is, so the caller sees its current state."""
    return view.json({"error": "conflict", "detail": reason, "alert": shown}, status=409)
