"""Email channel: the alert as a plain-text message over SMTP, keyed for dedup.

The delivery key is the message's `Message-ID` (`<key@backbone.invalid>`) and its
`X-Backbone-Delivery` header, so a mailbox or a ticketing system that receives the same
notification twice (a worker died after sending, before recording) can drop the repeat.
stdlib smtplib runs in a thread: it is blocking, but complete and needs no extra dependency.
Connection errors and SMTP 4xx replies are retried; 5xx replies are refusals.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate

from streams.alerting.notifications.channel import DeadLetterSink, Delivery
from streams.alerting.notifications.delivery_log import DeliveryOutcome
from streams.alerting.notifications.retry import (
    PermanentFailure,
    RetryPolicy,
    TransientFailure,
    send_with_retries,
)

MESSAGE_ID_DOMAIN = "backbone.invalid"
# Headers unfolded (RFC 5322 allows 998) so a naive receiver reads the key in one piece.
HEADER_POLICY = SMTP_POLICY.clone(max_line_length=998)


def compose(delivery: Delivery, sender: str) -> EmailMessage:
    """The message a coordinator's mailbox receives for one delivery."""
    alert = delivery.alert
    message = EmailMessage(policy=HEADER_POLICY)
    message["From"] = sender
    message["To"] = delivery.recipient.address
    message["Subject"] = f"[{alert.severity}] {alert.rule_id} {alert.rule_name} ({delivery.stage})"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{delivery.key}@{MESSAGE_ID_DOMAIN}>"
    message["X-Backbone-Delivery"] = delivery.key
    message["X-Backbone-Alert"] = alert.alert_id
    message.set_content(_body(delivery))
    return message


def _body(delivery: Delivery) -> str:
    alert = delivery.alert
    lines = [f"WITHDRAWN: {delivery.note}", ""] if delivery.stage == "withdrawn" else []
    lines += [
        alert.text,
        "",
        f"Alert {alert.alert_id} ({delivery.stage}), severity {alert.severity}",
        f"Rule {alert.rule_id} version {alert.rule_version}: {alert.rule_name}",
        f"Person {alert.person_id}, matched at {alert.matched_at.isoformat()}",
        "",
        "Events that satisfied the rule:",
    ]
    lines += [
        f"- {event.occurred_at} {event.agency} {event.event_type} ({event.event_id})"
        for event in alert.explanation.events
    ]
    lines += ["", f"Delivery key: {delivery.key}"]
    return "\n".join(lines) + "\n"


class EmailChannel:
    """Delivers to email recipients through one SMTP relay."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        policy: RetryPolicy,
        dead_letter: DeadLetterSink,
        *,
        timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._policy = policy
        self._dead_letter = dead_letter
        self._timeout = timeout

    async def send(self, delivery: Delivery) -> DeliveryOutcome:
        """Hand the message to the relay, retrying; dead-letter when it cannot be sent."""
        return await send_with_retries(delivery, self._submit, self._policy, self._dead_letter)

    async def close(self) -> None:
        """Nothing held open: each delivery uses its own SMTP session."""

    async def _submit(self, delivery: Delivery) -> None:
        await asyncio.to_thread(self._submit_blocking, compose(delivery, self._sender))

    def _submit_blocking(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            _judge_codes([code for code, _ in exc.recipients.values()], str(exc.recipients))
        except smtplib.SMTPResponseException as exc:
            _judge_codes([exc.smtp_code], f"SMTP {exc.smtp_code} {exc.smtp_error!r}")
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientFailure(f"{type(exc).__name__}: {exc}") from exc
        else:
            if refused:
                _judge_codes([code for code, _ in refused.values()], str(refused))


def _judge_codes(codes: list[int], detail: str) -> None:
    if any(400 <= code < 500 for code in codes):
        raise TransientFailure(detail)
    raise PermanentFailure(detail)
