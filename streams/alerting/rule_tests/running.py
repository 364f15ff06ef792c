"""Running rule tests: the given events through the alert processor's own code, then the alerts
it published compared with the ones expected.

Each test gets a fresh `InMemoryAlerting` (streams/alerting/in_memory.py): `AlertTracker`, as
the worker and `backbone rules replay` run it, on in-memory stores. Its alert steps are folded
into the alerts a coordinator would see: the events of the `raised` step and of every
`absorbed` one, `withdrawn` if the last step withdrew the alert, else `open`. A test passes
when every expected alert was raised, no alert a `none` expectation rules out was, and no other
alert was (an alert nobody expected fails the test, as in `promtool test rules`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.alerting.in_memory import InMemoryAlerting
from streams.alerting.pruning import EARLIEST
from streams.alerting.rule_tests.files import Expected, RuleTest, RuleTestFile, Tick
from streams.alerting.view import event_time

# The alert step that takes an alert back (an open alert a late event disproved).
WITHDRAWN = "withdrawn"


@dataclass(eq=False)
class SeenAlert:
    """An alert as a test sees it, folded from its steps (each one itself, whatever it holds)."""

    rule_id: str
    person_id: str
    events: list[str]
    state: str = "open"

    def fulfils(self, expected: Expected) -> bool:
        """True if this is the alert `expected` describes (its events in any order)."""
        return (self.rule_id, self.person_id, self.state, set(self.events)) == (
            expected.rule,
            expected.person,
            expected.state,
            set(expected.events or ()),
        )

    def ruled_out_by(self, expected: Expected) -> bool:
        """True if a `none` expectation says there is no such alert."""
        return (
            bool(expected.none)
            and self.rule_id == expected.rule
            and expected.person in (None, self.person_id)
        )

    def describe(self) -> str:
        """`R1 person=p1 open events=[a, b]`, as an expectation is written."""
        return (
            f"{self.rule_id} person={self.person_id} {self.state} events=[{', '.join(self.events)}]"
        )


def fold(steps: Iterable[tuple[str, dict[str, Any]]]) -> list[SeenAlert]:
    """The alerts the steps (alert id, AlertEvent record) leave, in the order they were raised."""
    alerts: dict[str, SeenAlert] = {}
    for alert_id, step in steps:
        raised = step.get("alert")
        if step["change"] == "raised" and raised is not None:
            events = [event["event_id"] for event in raised["events"]]
            alerts[alert_id] = SeenAlert(raised["rule_id"], raised["person_id"], events)
            continue
        alert = alerts.get(alert_id)
        if alert is None:
            continue
        if step["change"] == WITHDRAWN:
            # Its added event is the one that disproved it, not part of the explanation.
            alert.state = WITHDRAWN
            continue
        added = [event["event_id"] for event in step.get("added_events") or []]
        alert.events += [event_id for event_id in added if event_id not in alert.events]
    return list(alerts.values())


@dataclass(frozen=True)
class Check:
    """One expectation and the alerts that met it (an expected alert) or broke it (`none`)."""

    expected: Expected
    alerts: tuple[SeenAlert, ...]

    @property
    def ok(self) -> bool:
        """True if the expectation holds."""
        return bool(self.alerts) != bool(self.expected.none)

    def describe(self) -> str:
        """`expected ...: raised` / `: not raised`, or for `none` the alerts that were."""
        if not self.expected.none:
            return f"expected {self.expected.describe()}: {'raised' if self.ok else 'not raised'}"
        found = "; ".join(alert.describe() for alert in self.alerts)
        return (
            f"expected {self.expected.describe()}: {f'raised {found}' if found else 'none raised'}"
        )


@dataclass(frozen=True)
class Verdict:
    """How one test went."""

    source: str
    name: str
    checks: tuple[Check, ...]
    unexpected: tuple[SeenAlert, ...]

    @property
    def ok(self) -> bool:
        """True if every expectation holds and no alert was raised that nobody expected."""
        return all(check.ok for check in self.checks) and not self.unexpected

    def lines(self) -> list[str]:
        """`ok <file>: <name>`; for a failure, every expectation and every unexpected alert."""
        if self.ok:
            return [f"ok   {self.source}: {self.name}"]
        raised = self.unexpected or any(check.alerts for check in self.checks)
        return [
            f"FAIL {self.source}: {self.name}",
            *(f"  {check.describe()}" for check in self.checks),
            *(f"  raised {alert.describe()}: not expected" for alert in self.unexpected),
            *([] if raised else ["  no alert was raised"]),
        ]


class WallClock:
    """The test's wall clock: where the last timer tick put it, never behind a given event."""

    def __init__(self) -> None:
        self.now = EARLIEST

    def __call__(self) -> datetime:
        return self.now

    def reaches(self, moment: datetime) -> None:
        """The wall clock shows `moment` now, unless it is past it already."""
        self.now = max(self.now, moment)


def run_file(test_file: RuleTestFile) -> list[Verdict]:
    """Every test of the file, in order."""
    return [run_test(test_file, test) for test in test_file.tests]


def run_test(test_file: RuleTestFile, test: RuleTest) -> Verdict:
    """Feed the test's events and timer ticks to a fresh tracker and judge what it raised."""
    clock = WallClock()
    alerting = InMemoryAlerting(test_file.rules, test_file.lateness, clock=clock)
    for step in test.given:
        if isinstance(step, Tick):
            clock.reaches(step.at)
            alerting.finish()
        else:
            clock.reaches(event_time(step.entry))
            alerting.feed(step.person_id, step.entry, step.household)
    return judge(str(test_file.path), test, fold(alerting.result.steps))


def judge(source: str, test: RuleTest, alerts: list[SeenAlert]) -> Verdict:
    """Match each expected alert to a raised one of its own; a `none` expectation is broken by
    any alert it rules out; what is left is unexpected."""
    left = list(alerts)
    met: dict[int, tuple[SeenAlert, ...]] = {}
    for position, expected in enumerate(test.expect):
        if not expected.none:
            met[position] = tuple(alert for alert in left if alert.fulfils(expected))[:1]
            left = [alert for alert in left if alert not in met[position]]
    for position, expected in enumerate(test.expect):
        if expected.none:
            met[position] = tuple(alert for alert in alerts if alert.ruled_out_by(expected))
            left = [alert for alert in left if alert not in met[position]]
    checks = tuple(Check(expected, met[position]) for position, expected in enumerate(test.expect))
    return Verdict(source, test.name, checks, tuple(left))
