"""Which worker owns a table key, and forwarding a coordinator request to that worker.

A table entry lives on the partition of the event that wrote it. Those events are keyed by
the raw id (the record hash on the agency topics, the person id on `person-events`) and
partitioned with Kafka's murmur2 of the key bytes, by librdkafka (connectors) and aiokafka
(Faust) alike. Faust's own router (`app.router.route_req`) hashes the key as the table
serialises it, JSON with quotes, so for most keys it names another partition than the one
holding the entry, and with several workers the request ends at a worker without it. Routing
here hashes the raw key bytes, as the producers did.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import faust
from faust.web import Request, Response, View
from yarl import URL

# Request header: the worker that forwarded the request (a forwarded request is never
# forwarded again, so two workers that disagree on the owner cannot bounce it forever).
FORWARDED_BY = "X-Backbone-Forwarded-By"
# Response header on a forwarded answer: the worker that answered (and audited) it.
ANSWERED_BY = "X-Backbone-Answered-By"
FORWARD_TIMEOUT_S = 10.0
# Hop-by-hop and framing headers the forwarding request must set for itself.
NOT_FORWARDED = {"host", "content-length", "connection", "transfer-encoding"}


class OwnerUnavailableError(Exception):
    """No worker can be named as the owner right now: partitions are being reassigned."""


class OwnerRouter:
    """Finds the worker owning a key of a table and forwards requests to it."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._known_changelogs: set[str] = set()

    async def owner_of(self, table: Any, key: str) -> URL | None:
        """The URL of the worker owning `key` in `table`; None when it is this worker."""
        changelog: str = table.changelog_topic.get_topic_name()
        if changelog not in self._known_changelogs:
            # The partitioner reads the producer's metadata, which lacks a changelog this
            # worker has not written to yet; partitions_for() fetches it.
            producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
            await producer.partitions_for(changelog)
            self._known_changelogs.add(changelog)
        try:
            owner = self.app.assignor.key_store(changelog, key.encode())
        except KeyError:
            raise OwnerUnavailableError("partitions are being reassigned; retry") from None
        return None if _same_worker(owner, URL(str(self.app.conf.canonical_url))) else owner

    async def forward(self, owner: URL, view: View, request: Request) -> Response:
        """Send `request` to `owner` and return its answer, marked with who answered."""
        if FORWARDED_BY in request.headers:
            raise OwnerUnavailableError(
                "the workers disagree on the owner while partitions move; retry"
            )
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in NOT_FORWARDED
        }
        headers[FORWARDED_BY] = str(self.app.conf.canonical_url)
        target = owner.with_path(request.rel_url.path).with_query(request.rel_url.query)
        sent = await request_body(request)  # a POST's body goes along
        try:
            async with self.app.http_client.request(
                request.method,
                target,
                headers=headers,
                data=sent or None,
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S),
            ) as answer:
                body = await answer.text()
                content_type = answer.content_type
                status = answer.status
                moved_to = answer.headers.get("Location")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OwnerUnavailableError(f"the owning worker {owner} did not answer; retry") from exc
        return view.text(
            body,
            content_type=content_type,
            status=status,
            # A merged person's answer names where its resources went.
            headers={ANSWERED_BY: str(owner), **({"Location": moved_to} if moved_to else {})},
        )


async def request_body(request: Request) -> bytes:
    """The request's body; read any number of times, so a worker may read a POST's body to
    check it and still forward it (aiohttp keeps what `read` returned)."""
    body: bytes = await request.read()
    return body


def _same_worker(one: URL, other: URL) -> bool:
    return (one.host, one.port) == (other.host, other.port)
