"""The Notifier: deliver an alert's stage to every recipient of its teams, once each."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from backbone.errors import ConfigurationError
from streams.alerting.alert import Alert
from streams.alerting.notifications.channel import Channel, Delivery
from streams.alerting.notifications.delivery_log import DeliveryLog, DeliveryOutcome, delivery_key
from streams.alerting.notifications.delivery_status import WITHDRAWN, delivery_statuses, told_of
from streams.alerting.notifications.routing import ChannelKind, Recipient, Routing

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Notification:
    """What happened for one recipient; `sent` is False when the log showed it had ended."""

    recipient: Recipient
    key: str
    outcome: DeliveryOutcome
    sent: bool


class Notifier:
    """Routes alerts to recipients and sends through the channels, checking the delivery log."""

    def __init__(
        self, routing: Routing, channels: Mapping[ChannelKind, Channel], delivery_log: DeliveryLog
    ) -> None:
        groups = [*routing.teams.values(), *routing.escalation.values()]
        kinds = {recipient.kind for group in groups for recipient in group}
        missing = sorted(kinds - set(channels))
        if missing:
            raise ConfigurationError(f"notifier: no channel for {', '.join(missing)} recipients")
        self._routing = routing
        self._channels = channels
        self._log = delivery_log

    async def notify(
        self, alert: Alert, stage: str = "open", teams: Iterable[str] | None = None
    ) -> list[Notification]:
        """Deliver `alert` at `stage` to its teams (or `teams`, e.g. an escalation contact)."""
        wanted = tuple(alert.teams if teams is None else teams)
        for team in self._routing.unrouted(wanted):
            log.warning("notification_team_unrouted", alert_id=alert.alert_id, team=team)
        return await self._deliver_all(alert, stage, self._routing.recipients_for(wanted))

    async def escalate(self, alert: Alert) -> list[Notification]:
        """Deliver `alert` at stage `escalated` to its teams' escalation contacts."""
        for team in Routing(self._routing.escalation).unrouted(alert.teams):
            log.warning("escalation_contact_missing", alert_id=alert.alert_id, team=team)
        contacts = self._routing.escalation_contacts(alert.teams)
        return await self._deliver_all(alert, "escalated", contacts)

    async def withdraw(self, alert: Alert, reason: str) -> list[Notification]:
        """Tell every recipient who received the alert (open or escalated) that it is
        withdrawn, and why; nobody who was never told hears of it."""
        told = told_of(self._routing, self._log, alert.alert_id, alert.teams)
        unique = {recipient.identity: recipient for _, recipient in told}
        return await self._deliver_all(alert, WITHDRAWN, unique.values(), reason)

    async def _deliver_all(
        self,
        alert: Alert,
        stage: str,
        recipients: Iterable[Recipient],
        note: str | None = None,
    ) -> list[Notification]:
        return list(
            await asyncio.gather(
                *(self._deliver_once(alert, stage, recipient, note) for recipient in recipients)
            )
        )

    async def _deliver_once(
        self, alert: Alert, stage: str, recipient: Recipient, note: str | None
    ) -> Notification:
        key = delivery_key(alert.alert_id, stage, recipient)
        ended = self._log.outcome(key)
        if ended is not None:
            return Notification(recipient, key, ended, sent=False)
        delivery = Delivery(key=key, stage=stage, alert=alert, recipient=recipient, note=note)
        outcome = await self._channels[recipient.kind].send(delivery)
        # Recorded only now, after the channel confirmed: a crash before this line re-sends
        # under the same key, and the receiver drops the repeat (see delivery_log).
        self._log.record(key, outcome)
        return Notification(recipient, key, outcome, sent=True)

    def deliveries(
        self, alert_id: str, teams: Iterable[str], stages: Iterable[str]
    ) -> list[dict[str, str]]:
        """How each notification of the alert's stages stands, by team and recipient, as the
        delivery log knows it (delivery_status.py)."""
        return delivery_statuses(self._routing, self._log, alert_id, tuple(teams), stages)

    async def close(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            await channel.close()
