"""The coordinator HTTP API served by the workers (README, "Coordinator API").

Every coordinator request carries `Authorization: Bearer <token>` and `X-Purpose`, and is
written to the audit topic whatever its outcome. A request for a key another worker owns is
forwarded to that worker (streams/api/routing.py), which answers and audits it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import faust
from faust.web import Request, Response, View, Web

from backbone.contracts import Agency, check_id_type
from backbone.errors import BadInput
from backbone.metrics import exposition
from backbone.pseudonyms import Pseudonymiser
from backbone.tokens import Coordinator, InvalidToken, verify_token
from streams.api.audit import AuditTrail
from streams.api.routing import ANSWERED_BY, OwnerRouter, OwnerUnavailableError, request_body
from streams.identity.processor import Identity
from streams.timeline.entries import iso
from streams.timeline.pages import TimelineQuery, read_page
from streams.timeline.processor import Timelines
from streams.timeline.store import household_of_head

Handler = Callable[[Web, Request, Coordinator], Awaitable[Response]]
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class ApiError(Exception):
    """An error answer: HTTP status, error code, and a detail that names the field."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class CoordinatorApi:
    """Registers the API's pages on the Faust app."""

    def __init__(
        self,
        app: faust.App,
        token_secret: bytes,
        pseudonyms: Pseudonymiser,
        audit: AuditTrail,
        identity: Identity,
        timelines: Timelines,
    ) -> None:
        self.app = app
        self._token_secret = token_secret
        self.pseudonyms = pseudonyms
        self.audit = audit
        self.identity = identity
        self.timelines = timelines
        self.router = OwnerRouter(app)

        self.page("/health", self.health)
        self.page("/metrics", self.metrics)
        self.page("/persons/lookup", self.lookup)
        self.page("/persons/{person_id}/timeline", self.timeline)
        self.page("/persons/{person_id}/links", self.links)
        self.page("/review", self.review)
        self.post_page("/review/{review_id}", self.decide_review)

    def page(self, path: str, handler: Callable[..., Awaitable[Response]]) -> None:
        """Register `handler` for GET requests to `path`."""

        # Faust calls a page function as fun(view, request, **match_info); a bound method
        # would lose the view, so wrap it in a plain function.
        async def get(view: View, request: Request, **params: str) -> Response:
            return await handler(view, request, **params)

        get.__name__ = handler.__name__
        self.app.page(path)(get)

    def post_page(self, path: str, handler: Callable[..., Awaitable[Response]]) -> None:
        """Register `handler` for POST requests to `path`."""
        self.app.page(path)(type(handler.__name__, (View,), {"post": post_handler(handler)}))

    async def health(self, view: View, _request: Request) -> Response:
        # Ready once tables are recovered and partitions are assigned: before that a
        # request for a person cannot be answered or routed.
        ready = (
            self.app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
            and not self.app.rebalancing
            and not self.app.in_recovery
        )
        return view.json({"status": "ok", "ready": ready}, status=200 if ready else 503)

    async def metrics(self, view: View, _request: Request) -> Response:
        body, content_type = exposition()
        return view.bytes(body, headers={"Content-Type": content_type})

    async def lookup(self, view: View, request: Request) -> Response:
        """`GET /persons/lookup?agency=A&id_type=T&id=ID` -> the person id."""

        async def answer(caller: Coordinator) -> Response:
            agency = _agency(required_parameter(request, "agency"))
            id_type = _id_type(agency, required_parameter(request, "id_type"))
            record_id = self.pseudonyms.record_id(
                agency.value, id_type, required_parameter(request, "id")
            )
            return await self.on_owner(
                self.identity.links.table,
                record_id,
                view,
                request,
                lambda: self._person_for_record(view, record_id),
            )

        return await self.coordinator_request(view, request, "GET /persons/lookup", answer)

    async def timeline(self, view: View, request: Request, person_id: str) -> Response:
        """`GET /persons/{person_id}/timeline` with filters and paging."""
        return await self._person_request(
            view,
            request,
            person_id,
            "timeline",
            lambda caller: self._timeline_page(view, request, caller, person_id),
        )

    async def links(self, view: View, request: Request, person_id: str) -> Response:
        """`GET /persons/{person_id}/links`: the agency records of a person and why each."""
        return await self._person_request(
            view, request, person_id, "links", lambda _caller: self._links_of(view, person_id)
        )

    async def _person_request(
        self,
        view: View,
        request: Request,
        person_id: str,
        page: str,
        answer_here: Callable[[Coordinator], Awaitable[Response]],
    ) -> Response:
        """A coordinator request about one person, answered by the worker owning the person."""

        async def answer(caller: Coordinator) -> Response:
            return await self.on_owner(
                self.timelines.table, person_id, view, request, lambda: answer_here(caller)
            )

        return await self.coordinator_request(
            view, request, f"GET /persons/{{person_id}}/{page}", answer
        )

    async def review(self, view: View, request: Request) -> Response:
        """`GET /review`: the possible matches waiting for a coordinator, best score first."""

        async def answer(caller: Coordinator) -> Response:
            # The queue sits on the identity resolver's one partition: any key finds its owner.
            return await self.on_owner(
                self.identity.reviews.table,
                "queue",
                view,
                request,
                lambda: self._review_queue(view, caller),
            )

        return await self.coordinator_request(view, request, "GET /review", answer)

    async def decide_review(self, view: View, request: Request, review_id: str) -> Response:
        """`POST /review/{id}` `{"decision": "match" | "no_match", "reason"}`: `202`, applied by
        the identity resolver in order with the records it resolves."""

        async def answer(caller: Coordinator) -> Response:
            decision, reason = _review_decision(await json_body(request))

            async def here() -> Response:
                case = self.identity.reviews.get(review_id)
                if case is None:
                    raise ApiError(404, "not_found", f"no possible match {review_id} to review")
                if not may_review(case, caller):
                    raise ApiError(403, "forbidden", f"role {caller.role} may not review it")
                await self.identity.request_review_decision(
                    review_id, decision, reason, caller.name
                )
                return view.json({"review_id": review_id, "decision": decision}, status=202)

            return await self.on_owner(self.identity.reviews.table, "queue", view, request, here)

        return await self.coordinator_request(view, request, "POST /review/{id}", answer)

    async def _review_queue(self, view: View, caller: Coordinator) -> Response:
        waiting = sorted(
            (case for case in self.identity.reviews.values() if may_review(case, caller)),
            key=lambda case: (-(case.get("evidence") or {}).get("score", 0), case["review_id"]),
        )
        return view.json({"reviews": waiting})

    async def _links_of(self, view: View, person_id: str) -> Response:
        # The person's head (streams/timeline/store.py) holds the links.
        stored = self.timelines.table.get(person_id)
        if stored and "merged_into" in stored:
            return _merged(view, person_id, stored["merged_into"], "links")
        if not stored or not stored.get("links"):
            raise ApiError(404, "not_found", f"no records linked to person {person_id}")
        return view.json(
            {
                "person_id": person_id,
                "links": [stored["links"][record_id] for record_id in sorted(stored["links"])],
            }
        )

    async def _person_for_record(self, view: View, record_id: str) -> Response:
        link = self.identity.links.get(record_id)
        if link is None:
            raise ApiError(404, "not_found", "no person has that agency identifier")
        return view.json({"person_id": link["person_id"]})

    async def _timeline_page(
        self, view: View, request: Request, caller: Coordinator, person_id: str
    ) -> Response:
        stored = self.timelines.table.get(person_id)
        if stored and "merged_into" in stored:
            return _merged(view, person_id, stored["merged_into"], "timeline")
        if not stored:
            raise ApiError(404, "not_found", f"no timeline for person {person_id}")
        # A person known so far only as a household member or by links has no events yet.
        query = TimelineQuery(
            agency=request.query.get("agency"),
            event_type=request.query.get("event_type"),
            since=moment_of(request, "from"),
            until=moment_of(request, "to"),
            after=request.query.get("cursor"),
            limit=limit_of(request),
        )
        # The head names the person's months; only those the page needs are read.
        page, next_cursor = read_page(self.timelines.months, person_id, stored, query)
        return view.json(
            {
                "person_id": person_id,
                "household": [
                    {"person_id": member, "relationship": relationship}
                    for member, relationship in sorted(household_of_head(stored).items())
                ],
                "events": [visible_entry(entry, caller) for entry in page],
                "next_cursor": next_cursor,
            }
        )

    async def on_owner(
        self,
        table: Any,
        key: str,
        view: View,
        request: Request,
        answer_here: Callable[[], Awaitable[Response]],
    ) -> Response:
        """Answer here if this worker owns `key` in `table`, else forward to the owner."""
        try:
            owner = await self.router.owner_of(table, key)
            if owner is None:
                return await answer_here()
            return await self.router.forward(owner, view, request)
        except OwnerUnavailableError as exc:
            raise ApiError(503, "unavailable", str(exc)) from None

    async def coordinator_request(
        self,
        view: View,
        request: Request,
        action: str,
        answer: Callable[[Coordinator], Awaitable[Response]],
    ) -> Response:
        """Authenticate, require a purpose, answer, and audit whatever happened."""
        caller: Coordinator | None = None
        purpose = request.headers.get("X-Purpose", "").strip() or None
        try:
            caller = self._caller(request)
            if purpose is None:
                raise ApiError(400, "missing_purpose", "X-Purpose header is required")
            response = await answer(caller)
        except ApiError as exc:
            response = view.json({"error": exc.code, "detail": exc.detail}, status=exc.status)
        if ANSWERED_BY not in response.headers:
            # A forwarded request is audited once, by the owner that answered it.
            await self.audit.record(caller, purpose, action, str(request.rel_url), response.status)
        return response

    def _caller(self, request: Request) -> Coordinator:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthenticated", "Authorization: Bearer <token> is required")
        try:
            return verify_token(self._token_secret, token.strip())
        except InvalidToken as exc:
            raise ApiError(401, "invalid_token", str(exc)) from exc


def _merged(view: View, person_id: str, survivor: str, resource: str) -> Response:
    """A merged person's resources moved to the person it was merged into: 301 to there."""
    return view.json(
        {"person_id": person_id, "merged_into": survivor},
        status=301,
        headers={"Location": f"/persons/{survivor}/{resource}"},
    )


def post_handler(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Any]:
    # A View subclass's `post` is called as post(view, request, **match_info).
    async def post(view: View, request: Request, **params: str) -> Response:
        return await handler(view, request, **params)

    return post


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request_body(request) or b"null")
    except ValueError:
        raise ApiError(400, "invalid_body", "body: not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "body: a JSON object is required")
    return body


def _review_decision(body: dict[str, Any]) -> tuple[str, str]:
    decision = body.get("decision")
    if decision not in ("match", "no_match"):
        raise ApiError(400, "invalid_body", "decision: must be match or no_match")
    return decision, reason_of(body)


def reason_of(body: dict[str, Any]) -> str:
    """The `reason` a change to someone's records must give."""
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "invalid_body", "reason: a reason is required")
    return reason.strip()


def required_parameter(request: Request, name: str) -> str:
    value = request.query.get(name, "").strip()
    if not value:
        raise ApiError(400, "missing_parameter", f"query parameter {name} is required")
    return value


def _agency(value: str) -> Agency:
    try:
        return Agency(value)
    except ValueError:
        allowed = ", ".join(agency.value for agency in Agency)
        raise ApiError(400, "invalid_parameter", f"agency must be one of {allowed}") from None


def _id_type(agency: Agency, value: str) -> str:
    # An identifier type no connector sets would only ever find nobody: say which exist.
    try:
        check_id_type(agency, value)
    except BadInput as exc:
        raise ApiError(400, "invalid_parameter", f"{exc.field} {exc.reason}") from None
    return value


def moment_of(request: Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ApiError(400, "invalid_parameter", f"{name} must carry a UTC offset")
    return iso(moment)


def limit_of(request: Request) -> int:
    value = request.query.get("limit", str(DEFAULT_LIMIT))
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise ApiError(400, "invalid_parameter", f"limit must be 1 to {MAX_LIMIT}")
    return int(value)


def may_review(case: dict[str, Any], caller: Coordinator) -> bool:
    """A possible match is for the roles that may see its agency's details: the agency of the
    record under review (the resolver keeps no agency for the candidate it names)."""
    return caller.may_see_details_of(Agency(case["agency"]))


def visible_entry(entry: dict[str, Any], caller: Coordinator) -> dict[str, Any]:
    if caller.may_see_details_of(Agency(entry["agency"])):
        return entry
    return {**entry, "details": None}
