"""Exactly-once notification per recipient: delivery keys and the delivery log.

A delivery key names one notification: `sha256(alert id, stage, recipient)`, where the stage
is the alert's lifecycle step being announced (`open`, `escalated`, ...) so an escalation is a
new notification but a repeat of the same one is not. The key is deterministic, so any worker,
before or after a restart, computes the same key for the same notification.

The Notifier checks the log before sending and records the key only after the channel
confirmed the send (webhook 2xx, SMTP server accepted the message). Sending and recording
cannot be one atomic step, so there are two crash windows:

- crash before the send: nothing was recorded, the next worker sends; nobody saw it before.
- crash after the send, before the record reached the log (the Faust table's changelog): the
  next worker does not find the key and sends again, with the SAME key, as the webhook's
  `Idempotency-Key` header and the email's `Message-ID` / `X-Backbone-Delivery` headers. The
  receiver has seen that key and drops the repeat.

So the sender guarantees at-least-once and the key makes it exactly-once as the receiver sees
it. The log is what keeps repeats rare (only the crash window), and it is any mutable mapping
of key to outcome: a dict in tests, a Faust table in the worker.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping
from enum import StrEnum

from streams.alerting.notifications.routing import Recipient

# Separates the parts so ("a", "bc") and ("ab", "c") never hash alike.
_UNIT_SEPARATOR = "\x1f"


class DeliveryOutcome(StrEnum):
    """How a notification ended; both end it for good, so neither is sent again."""

    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"


def delivery_key(alert_id: str, stage: str, recipient: Recipient) -> str:
    """The idempotency key of one notification of an alert's stage to one recipient."""
    material = _UNIT_SEPARATOR.join((alert_id, stage, recipient.identity))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class DeliveryLog:
    """Which notifications have ended, over a dict-like store (a Faust table in the worker)."""

    def __init__(self, store: MutableMapping[str, str]) -> None:
        self._store = store

    def outcome(self, key: str) -> DeliveryOutcome | None:
        """How the notification with this key ended, or None when it has not (yet)."""
        recorded = self._store.get(key)
        return DeliveryOutcome(recorded) if recorded is not None else None

    def record(self, key: str, outcome: DeliveryOutcome) -> None:
        """Remember that a notification ended; call only after the channel confirmed it."""
        self._store[key] = outcome.value
