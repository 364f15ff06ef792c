"""Logic: what the processors' own code costs per event, without Kafka and without Faust.

Every event of the run, read back from the agency topics, goes through the domain code the
worker's agents call, in this process, with the state in dicts: the identity resolver (the
subject and any household members), the timeline (the entry, added in event-time order, and
the whole timeline written and read back as JSON, as its table value is), and the alert tracker
with the shipped rules. Only those calls are timed, not the reading or the decoding (that is
the ceiling). It is the most any runtime gets from this code on one core: the pipeline's rate
against it says what the framework costs, this rate against the target what the code costs.
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
from streams.identity.linkage import Resolver, ResolverState
from streams.timeline.processor import add_event, timeline_entry

STAGES = ("identity", "timeline", "table_values", "alerts")
LATENESS = timedelta(days=1)  # the worker's default (BACKBONE_ALERT_LATENESS_S)


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


class _Processors:
    """The agents' domain calls, in the order an event meets them, state in dicts."""

    def __init__(self) -> None:
        self.resolver = Resolver(state=ResolverState())
        self.timelines: dict[str, dict[str, Any]] = {}
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
        subject = record["envelope"]["subject"]
        self.resolver.resolve(subject)
        members = record.get("household") or []
        for member in members:
            self.resolver.resolve(member["subject"])
        person_id = self.resolver.person_of(subject["record_id"])
        household = {
            self.resolver.person_of(member["subject"]["record_id"]): member["relationship"]
            for member in members
        }
        clock.lap("identity")
        timeline = self.timelines.get(person_id) or {}
        add_event(timeline, timeline_entry(record))
        clock.lap("timeline")
        self.timelines[person_id] = table_json.loads(table_json.dumps(timeline))
        clock.lap("table_values")
        reaction = self.tracker.on_person_event(person_id, compact_entry(record), household)
        self.alerts += len(reaction.raised)
        clock.lap("alerts")


def run_logic(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Process every decoded agency event; events/s and microseconds per event by stage."""
    processors = _Processors()
    clock = _Clock()
    events = 0
    for record in records:
        processors.process(record, clock)
        events += 1
    seconds = sum(clock.seconds.values())
    return {
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1) if seconds else 0.0,
        "us_per_event": {
            stage: round(spent / max(events, 1) * 1e6, 1) for stage, spent in clock.seconds.items()
        },
        "alerts_raised": processors.alerts,
    }
