"""The contract between the Notifier and a channel: one delivery, sent or dead-lettered.

A channel retries transient failures itself (with backoff) and, when it gives up or the
failure is permanent, hands a DeadLetter to the callable it was given, so the wiring can put it
on the dead-letter topic. Either way `send` returns how the delivery ended.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from streams.alerting.alert import Alert
from streams.alerting.notifications.delivery_log import DeliveryOutcome
from streams.alerting.notifications.routing import Recipient


@dataclass(frozen=True)
class Delivery:
    """One notification: an alert's stage, to one recipient, under its delivery key; `note`
    says why, where the stage needs a reason (withdrawn)."""

    key: str
    stage: str
    alert: Alert
    recipient: Recipient
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON a webhook receives (and a dead letter carries)."""
        return {
            "delivery_key": self.key,
            "stage": self.stage,
            "note": self.note,
            "recipient": self.recipient.identity,
            "alert": self.alert.as_dict(),
        }


@dataclass(frozen=True)
class DeadLetter:
    """A delivery the channel gave up on, why, and after how many tries."""

    delivery: Delivery
    reason: str
    attempts: int


DeadLetterSink = Callable[[DeadLetter], Awaitable[None]]


class Channel(Protocol):
    """Sends deliveries of one kind (webhook, email)."""

    async def send(self, delivery: Delivery) -> DeliveryOutcome:
        """Deliver, retrying transient failures; dead-letter when giving up."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
