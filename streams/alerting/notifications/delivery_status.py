"""Who was really told of an alert: each recipient's delivery status, from the delivery log.

The log records a notification only once it ended: delivered (the channel confirmed it) or
dead-lettered (refused, or given up on after the last try). A notification of a stage the
alert reached that is not in the log is still being tried. The recipients are the ones the
routing names now for the alert's teams (an escalation's: their escalation contacts; a
withdrawal's: those of both who were told of the alert).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import StrEnum

from streams.alerting.notifications.delivery_log import DeliveryLog, DeliveryOutcome, delivery_key
from streams.alerting.notifications.routing import Recipient, Routing

# The stages the Notifier announces: a raised alert to its teams, an escalation to their
# escalation contacts, a withdrawal to whoever of them was told of the alert.
OPEN = "open"
ESCALATED = "escalated"
WITHDRAWN = "withdrawn"


class DeliveryStatus(StrEnum):
    """How one notification stands, as a coordinator reads it."""

    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"


_STATUS = {
    DeliveryOutcome.DELIVERED: DeliveryStatus.SENT,
    DeliveryOutcome.DEAD_LETTERED: DeliveryStatus.FAILED,
}


def delivery_statuses(
    routing: Routing, log: DeliveryLog, alert_id: str, teams: Iterable[str], stages: Iterable[str]
) -> list[dict[str, str]]:
    """Per stage, team and recipient: `{"stage", "team", "channel", "recipient", "status"}`."""
    statuses = []
    for stage in stages:
        for team, recipient in _recipients(routing, log, alert_id, stage, tuple(teams)):
            outcome = log.outcome(delivery_key(alert_id, stage, recipient))
            status = DeliveryStatus.RETRYING if outcome is None else _STATUS[outcome]
            statuses.append(
                {
                    "stage": stage,
                    "team": team,
                    "channel": recipient.kind,
                    "recipient": recipient.address,
                    "status": status.value,
                }
            )
    return statuses


def _recipients(
    routing: Routing, log: DeliveryLog, alert_id: str, stage: str, teams: tuple[str, ...]
) -> Iterator[tuple[str, Recipient]]:
    if stage == WITHDRAWN:
        yield from told_of(routing, log, alert_id, teams)
        return
    section = routing.escalation if stage == ESCALATED else routing.teams
    yield from ((team, recipient) for team in teams for recipient in section.get(team, ()))


def told_of(
    routing: Routing, log: DeliveryLog, alert_id: str, teams: Iterable[str]
) -> Iterator[tuple[str, Recipient]]:
    """(team, recipient) of everyone the alert was delivered to, open or escalated."""
    teams = tuple(teams)
    for stage, section in ((OPEN, routing.teams), (ESCALATED, routing.escalation)):
        for team in teams:
            for recipient in section.get(team, ()):
                outcome = log.outcome(delivery_key(alert_id, stage, recipient))
                if outcome is DeliveryOutcome.DELIVERED:
                    yield team, recipient
