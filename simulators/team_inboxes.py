"""Plays the teams' end of alert notifications: their mail server and their webhook receiver.

The demo points the worker's notifications here (the SMTP relay, and the sample routing's
webhook URLs on loopback), so it can show what each recipient received. Like a team's own
receiver, the webhook end checks `X-Signature` (HMAC-SHA256 of the body with the shared secret)
and takes a repeated `Idempotency-Key` once; the mail end takes a repeated `Message-ID` once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Received:
    """One notification as it arrived, and what its recipient reads first."""

    channel: str  # email or webhook
    recipient: str  # the mailbox, or the URL POSTed to
    alert_id: str
    headline: str  # the email's subject; the webhook's alert in one line


class _Arrivals:
    """What arrived, each delivery once (by its key and recipient), from either server's
    thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], Received] = {}
        self.repeats = 0  # deliveries that arrived again under a key seen before

    def add(self, key: str, received: Received) -> None:
        with self._lock:
            if (key, received.recipient) in self._seen:
                self.repeats += 1
            self._seen.setdefault((key, received.recipient), received)

    def of_alert(self, alert_id: str) -> list[Received]:
        with self._lock:
            return [received for received in self._seen.values() if received.alert_id == alert_id]


class _Mailbox:
    """aiosmtpd handler: every message, to each of its recipients."""

    def __init__(self, arrivals: _Arrivals) -> None:
        self._arrivals = arrivals

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = message_from_bytes(envelope.original_content or b"")
        for recipient in envelope.rcpt_tos:
            received = Received(
                "email", recipient, str(message["X-Backbone-Alert"]), str(message["Subject"])
            )
            self._arrivals.add(str(message["Message-ID"]), received)
        return "250 OK"


def _webhook_handler(
    arrivals: _Arrivals, secret: bytes, base_url: str
) -> type[BaseHTTPRequestHandler]:
    class WebhookHandler(BaseHTTPRequestHandler):
        """Checks the signature, then keeps the delivery once per idempotency key."""

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, self.headers.get("X-Signature", "")):
                self._answer(401)
                return
            delivery: dict[str, Any] = json.loads(body)
            alert = delivery["alert"]
            headline = (
                f"[{alert['severity']}] {alert['rule_id']} {alert['rule_name']} "
                f"({delivery['stage']})"
            )
            received = Received("webhook", base_url + self.path, alert["alert_id"], headline)
            arrivals.add(self.headers.get("Idempotency-Key", ""), received)
            self._answer(200)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            # The demo prints what arrived itself; no access log lines in between.
            pass

    return WebhookHandler


class TeamInboxes:
    """A mail server and a webhook receiver on loopback, each on its own thread."""

    def __init__(self, host: str, smtp_port: int, webhook_port: int, webhook_secret: str) -> None:
        self._arrivals = _Arrivals()
        self._smtp = Controller(_Mailbox(self._arrivals), hostname=host, port=smtp_port)
        handler = _webhook_handler(
            self._arrivals, webhook_secret.encode(), f"http://{host}:{webhook_port}"
        )
        self._webhooks = ThreadingHTTPServer((host, webhook_port), handler)
        self._webhook_thread = threading.Thread(target=self._webhooks.serve_forever, daemon=True)

    def start(self) -> None:
        """Start both servers; they answer once this returns."""
        self._webhook_thread.start()
        self._smtp.start()

    def stop(self) -> None:
        """Stop both servers and free their ports (also after a start that failed half-way:
        the mail server's port was taken)."""
        self._webhooks.shutdown()
        self._webhooks.server_close()
        self._smtp.stop(no_assert=True)

    def received(self, alert_id: str) -> list[Received]:
        """Every notification of the alert that arrived, once each."""
        return self._arrivals.of_alert(alert_id)

    @property
    def repeats(self) -> int:
        """How many notifications arrived again under a delivery key seen before (dropped)."""
        return self._arrivals.repeats
