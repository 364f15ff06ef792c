"""Identity: which person an agency record belongs to, and every event re-keyed by person.

For now a person is found deterministically: the keyed national identifier when the agency
holds it, otherwise the agency record itself. Probabilistic matching, merges and splits
(issue: identity resolution) replace `person_id_for` without changing the topics around it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import faust

from backbone.logging import get_logger
from backbone.metrics import EVENTS_IN, EVENTS_OUT
from backbone.topics import Topics
from streams.dead_letters import DeadLetters

log = get_logger(__name__)
PROCESSOR = "identity"


def person_id_for(subject: Mapping[str, Any]) -> str:
    """The person an agency subject is: by national identifier hash, else by its record."""
    national_id = subject.get("national_id")
    basis = f"national_id:{national_id}" if national_id else f"record:{subject['record_id']}"
    return "P" + hashlib.sha256(basis.encode()).hexdigest()[:24]


class Identity:
    """Consumes every agency topic, links records to persons, forwards by person id."""

    def __init__(self, app: faust.App, topics: Topics, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters
        # record id (keyed hash) -> person id; co-partitioned with the agency topics' keys.
        self.links = app.Table("record-links", default=None)
        self.person_events = app.topic(
            topics.person_events, key_serializer="raw", value_serializer="raw"
        )
        source = app.topic(
            *topics.all_agency_events(), key_serializer="raw", value_serializer="raw"
        )

        async def identify(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
            async for event in stream.events():
                await self.forward(event)
                yield None

        app.agent(source, name=PROCESSOR)(identify)

    async def forward(self, event: faust.EventT[bytes]) -> None:
        """Link the event's record to a person and send it on, keyed by person id."""
        record = await self.dead_letters.decode(PROCESSOR, event)
        if record is None:
            return
        envelope = record["envelope"]
        subject = envelope["subject"]
        EVENTS_IN.labels(PROCESSOR, envelope["agency"]).inc()
        person_id = self.links.get(subject["record_id"])
        if person_id is None:
            person_id = person_id_for(subject)
            self.links[subject["record_id"]] = person_id
        await self.person_events.send(
            key=person_id.encode(),
            value=event.value,
            headers={"event_id": envelope["event_id"].encode()},
        )
        EVENTS_OUT.labels(PROCESSOR, envelope["agency"], self.person_events.get_topic_name()).inc()
        log.debug("event_identified", event_id=envelope["event_id"], person_id=person_id)
