"""Logic: what the processors' own code costs per event, without Kafka and without Faust.

Every event of the run, read back from the agency topics, goes through the domain code the
worker's agents call, in this process, with the state in dicts: the identity router (records
linked and unchanged take their person from the links) and the resolver for the others (the
subject and any household members), the timeline (the entry stored in its month bucket; the
values it writes serialised and read back as JSON, as Faust's table values are), and the
alert tracker with the shipped rules. Only those calls are timed, not the reading or the
decoding (that is the ceiling). It is the most any runtime gets from this code on one core: the
pipeline's rate against it says what the framework costs, this rate against the target what
the code costs. Over a long run the rate over the first `EARLY` events is kept too: the code
should cost the same per event however much history the state already holds (month buckets,
not whole timelines), and the two rates side by side show whether it does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from faust.utils import json as table_json

from streams.alerting.evaluation import RuleEngine
from streams.alerting.rules import SHIPPED_RULES, load_rules
from streams.alerting.tracking import AlertTracker, compact_entry
from streams.identity.known_records import fingerprint, known_person
from streams.identity.linkage import Resolver, ResolverState
from streams.timeline.entries import timeline_entry
from streams.timeline.store import TimelineStore

STAGES = ("identity", "timeline", "alerts")
LATENESS = timedelta(days=1)  # the worker's default (BACKBONE_ALERT_LATENESS_S)
EARLY = 200_000  # events of the early rate, against the rate over all


@dataclass
class _Clock:
    """Seconds spent in each stage, summed over the events."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    mark: float = 0.0

    def start(self) -> None:
        self.mark = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self.mark
        self.mark = now


class _JsonValues(dict[str, Any]):
    """A dict whose values are written and read back as JSON, as a Faust table's are."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, table_json.loads(table_json.dumps(value)))


class _Processors:
    """The agents' domain calls, in the order an event meets them, state in dicts."""

    def __init__(self) -> None:
        self.resolver = Resolver(state=ResolverState())
        self.links: dict[str, dict[str, Any]] = {}
        self.timelines = TimelineStore(_JsonValues(), _JsonValues())
        self.tracker = AlertTracker(
            RuleEngine(load_rules(SHIPPED_RULES)),
            views={},
            deadlines={},
            priors={},
            lateness=LATENESS,
        )
        self.alerts = 0

    def process(self, record: dict[str, Any], clock: _Clock) -> None:
        clock.start()
        known = known_person(record, self.links)
        if known is None:
            person_id, household = self._resolve(record)
        else:
            person_id, household = known.person_id, known.household
        clock.lap("identity")
        self.timelines.record(person_id, [(timeline_entry(record), household)])
        self.timelines.drain()
        clock.lap("timeline")
        reaction = self.tracker.on_person_event(person_id, compact_entry(record), household)
        self.alerts += len(reaction.raised)
        clock.lap("alerts")

    def _resolve(self, record: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """The resolver's path: every subject resolved, its link and fingerprint kept."""
        subjects = [record["envelope"]["subject"]]
        subjects += [member["subject"] for member in record.get("household") or []]
        for subject in subjects:
            self.resolver.resolve(subject)
        for subject in subjects:
            person = self.resolver.person_of(subject["record_id"])
            self.links[subject["record_id"]] = {
                "person_id": person,
                "fingerprint": fingerprint(subject),
            }
        household = {
            self.resolver.person_of(member["subject"]["record_id"]): member["relationship"]
            for member in record.get("household") or []
        }
        return self.resolver.person_of(subjects[0]["record_id"]), household


def run_logic(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Process every decoded agency event; events/s and microseconds per event by stage."""
    processors = _Processors()
    clock = _Clock()
    events = 0
    early_seconds = 0.0
    for record in records:
        processors.process(record, clock)
        events += 1
        if events == EARLY:
            early_seconds = sum(clock.seconds.values())
    seconds = sum(clock.seconds.values())
    figures: dict[str, Any] = {
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1) if seconds else 0.0,
        "us_per_event": {
            stage: round(spent / max(events, 1) * 1e6, 1) for stage, spent in clock.seconds.items()
        },
        "alerts_raised": processors.alerts,
    }
    if events > EARLY:  # else the early rate is the rate over all
        figures["early"] = {"events": EARLY, "events_per_s": round(EARLY / early_seconds, 1)}
    return figures
