"""Webhook channel: POST the alert as JSON, signed, with the delivery key as idempotency key.

The receiver verifies `X-Signature: sha256=<hex>` (HMAC-SHA256 of the exact body bytes with
the recipient's secret) and drops a request whose `Idempotency-Key` it has already processed.
2xx is delivered; 408, 429, 5xx and connection errors are retried; any other status is a
refusal that no retry will change, so it is dead-lettered at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp

from streams.alerting.notifications.channel import DeadLetterSink, Delivery
from streams.alerting.notifications.delivery_log import DeliveryOutcome
from streams.alerting.notifications.retry import (
    PermanentFailure,
    RetryPolicy,
    TransientFailure,
    send_with_retries,
)

RETRIED_STATUSES = frozenset({408, 429})


def signature(secret: str, body: bytes) -> str:
    """The `X-Signature` value of a body: `sha256=<hex HMAC-SHA256>`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookChannel:
    """Delivers to webhook recipients; one HTTP session for all of them."""

    def __init__(
        self, policy: RetryPolicy, dead_letter: DeadLetterSink, *, timeout: float = 10.0
    ) -> None:
        self._policy = policy
        self._dead_letter = dead_letter
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, delivery: Delivery) -> DeliveryOutcome:
        """POST with retries; dead-letter after the last try or on a refusal."""
        return await send_with_retries(delivery, self._post, self._policy, self._dead_letter)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, delivery: Delivery) -> None:
        secret = delivery.recipient.secret
        if secret is None:
            raise PermanentFailure("webhook recipient has no secret")
        body = json.dumps(delivery.as_dict(), separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "X-Signature": signature(secret.get_secret_value(), body),
            "Idempotency-Key": delivery.key,
        }
        try:
            async with self._open().post(
                delivery.recipient.address, data=body, headers=headers
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientFailure(f"{type(exc).__name__}: {exc}") from exc
        _judge(status)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _judge(status: int) -> None:
    if 200 <= status < 300:
        return
    if status >= 500 or status in RETRIED_STATUSES:
        raise TransientFailure(f"HTTP {status}")
    raise PermanentFailure(f"HTTP {status}")
