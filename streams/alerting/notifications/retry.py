"""Retrying one delivery: exponential backoff with jitter, then the dead letter.

Backoff before try n+1 is `base * 2**(n-1)`, capped, times a random factor in
[1 - jitter, 1]: full doubling spaces retries out while a receiver recovers, and the jitter
keeps many workers that failed together from retrying in lockstep.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from streams.alerting.notifications.channel import DeadLetter, DeadLetterSink, Delivery
from streams.alerting.notifications.delivery_log import DeliveryOutcome

log = structlog.get_logger(__name__)


class TransientFailure(Exception):  # noqa: N818 - a failure of one try, not a program error
    """This try failed but a later one may succeed (5xx, connection refused, SMTP 4xx)."""


class PermanentFailure(Exception):  # noqa: N818
    """No retry can succeed (4xx other than 408/429, SMTP 5xx); dead-letter at once."""


@dataclass
class RetryPolicy:
    """How often and how patiently a channel tries one delivery."""

    tries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def delay_before(self, try_number: int) -> float:
        """Seconds to wait before try `try_number` (2, 3, ...)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (try_number - 2))
        return ceiling * (1 - self.jitter * self.rng.random())


async def send_with_retries(
    delivery: Delivery,
    attempt: Callable[[Delivery], Awaitable[None]],
    policy: RetryPolicy,
    dead_letter: DeadLetterSink,
) -> DeliveryOutcome:
    """Try `attempt` up to `policy.tries` times; dead-letter it when it cannot succeed."""
    bound = log.bind(delivery_key=delivery.key, recipient=delivery.recipient.identity)
    reason = "no try made"
    for try_number in range(1, policy.tries + 1):
        if try_number > 1:
            await policy.sleep(policy.delay_before(try_number))
        try:
            await attempt(delivery)
        except TransientFailure as exc:
            reason = f"try {try_number}/{policy.tries}: {exc}"
            bound.warning("notification_try_failed", reason=reason)
            continue
        except PermanentFailure as exc:
            return await _give_up(delivery, f"refused: {exc}", try_number, dead_letter)
        return DeliveryOutcome.DELIVERED
    return await _give_up(delivery, f"gave up, last {reason}", policy.tries, dead_letter)


async def _give_up(
    delivery: Delivery, reason: str, attempts: int, dead_letter: DeadLetterSink
) -> DeliveryOutcome:
    log.error("notification_dead_lettered", delivery_key=delivery.key, reason=reason)
    await dead_letter(DeadLetter(delivery=delivery, reason=reason, attempts=attempts))
    return DeliveryOutcome.DEAD_LETTERED
