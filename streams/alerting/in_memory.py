"""The alert tracker on in-memory stores: what `backbone rules replay` and `backbone rules test`
run.

`AlertTracker` (streams/alerting/tracking.py) is the alert processor's logic; here its stores
are dicts and the updates it asks to send to other persons' partitions (household members,
merges, deadline checks) are delivered at once, in the order they were asked for, instead of
through `<prefix>.alert-updates`. What it publishes is collected: the alerts raised, how many
later matches were absorbed, and every alert step (the AlertEvents the worker would put on
`<prefix>.alerts`) in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streams.alerting.alert import Alert, Withdrawal
from streams.alerting.evaluation import RuleEngine
from streams.alerting.rules import RuleSet
from streams.alerting.tracking import AlertTracker, Reaction, utc_now


@dataclass
class Published:
    """What the tracker published: alerts raised, matches absorbed, alerts withdrawn, every
    alert step."""

    raised: list[Alert] = field(default_factory=list)
    absorbed: int = 0
    # alert id -> the withdrawal of a raised alert that a later event disproved
    withdrawn: dict[str, Withdrawal] = field(default_factory=dict)
    # (alert id, backbone.alerts.AlertEvent record), in the order the worker would send them.
    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def per_rule(self) -> Counter[str]:
        """How many alerts each rule raised."""
        return Counter(alert.rule_id for alert in self.raised)

    def withdrawn_per_rule(self) -> Counter[str]:
        """How many of them a later event disproved, per rule."""
        return Counter(withdrawal.rule_id for withdrawal in self.withdrawn.values())


class InMemoryAlerting:
    """The alert tracker on dicts; updates for other persons are delivered at once, in order.

    What it publishes goes into `result` (a `Published`, or a caller's subclass of it).
    """

    def __init__(
        self,
        rules: RuleSet,
        lateness: timedelta,
        *,
        prune: bool = True,
        clock: Callable[[], datetime] = utc_now,
        result: Published | None = None,
    ) -> None:
        self.tracker = AlertTracker(
            RuleEngine(rules),
            views={},
            deadlines={},
            priors={},
            lateness=lateness,
            clock=clock,
            prune=prune,
        )
        self.result = Published() if result is None else result

    def feed(self, person_id: str, entry: dict[str, object], household: dict[str, str]) -> None:
        """One person event, as the processor's person-events agent takes it."""
        self.carry_out(self.tracker.on_person_event(person_id, entry, household))

    def finish(self) -> Published:
        """The worker's timer: move event time to the tracker's clock and decide due absences."""
        for person_id in self.tracker.advance_clock():
            self.carry_out(self.tracker.on_update(person_id, {"kind": "check"}))
        return self.result

    def carry_out(self, reaction: Reaction) -> None:
        """Collect the alert steps and deliver the updates, and the updates those beget, in
        order."""
        pending = [reaction]
        while pending:
            current = pending.pop(0)
            self.result.raised += current.raised
            self.result.absorbed += len(current.absorbed)
            self.result.withdrawn.update((w.alert_id, w) for w in current.withdrawn)
            self.result.steps += current.alert_events
            for forward in current.forwards:
                pending.append(self.tracker.on_update(forward.person_id, forward.update))
