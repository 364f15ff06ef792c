"""The webhook endpoint: POST /webhooks/social-care, answered only once Kafka has the event.

Order of checks: size (413) and read time (408), signature (401, nothing stored), idempotency
key (409 or the remembered answer, also after a restart), then the body (400, raw body
dead-lettered). Kafka not taking the event, its dead letter or the answer's record gives 503 so
the sender retries: nothing is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

from aiohttp import web

from backbone.errors import BadInput, TransientError
from backbone.events import SocialCareEvent
from backbone.logging import get_logger
from backbone.metrics import EVENTS_IN
from connectors.runtime import ConnectorRuntime
from connectors.social_care_webhook.config import SocialCareWebhookSettings
from connectors.social_care_webhook.idempotency import Answer, Conflict
from connectors.social_care_webhook.idempotency_store import IdempotencyStore
from connectors.social_care_webhook.mapping import parse_body, to_event

log = get_logger(__name__)
PATH = "/webhooks/social-care"


def sign(secret: bytes, body: bytes) -> str:
    """The X-Signature header value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def error(status: int, code: str, detail: str) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status)


class SocialCareWebhook:
    """The social care connector: an HTTP server the case management system POSTs to."""

    name = "social-care-webhook"

    def __init__(self, settings: SocialCareWebhookSettings) -> None:
        self.settings = settings
        self._secret = settings.webhook_secret.get_secret_value().encode()
        self._keys: IdempotencyStore | None = None
        self._runtime: ConnectorRuntime | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, runtime: ConnectorRuntime) -> None:
        self._runtime = runtime
        self._keys = IdempotencyStore(
            self.settings.kafka_bootstrap,
            runtime.topics.webhook_idempotency,
            runtime.publisher,
            self.settings.webhook_idempotency_keys,
            self.settings.webhook_idempotency_ttl_s,
        )
        self._keys.start()
        app = web.Application(client_max_size=self.settings.webhook_max_body_bytes)
        app.router.add_post(PATH, self.receive)
        # The keep-alive timer also runs before a request's head is complete: a client that
        # never finishes one is disconnected after it rather than held forever.
        self._runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=self.settings.webhook_read_timeout_s
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.webhook_host, self.settings.webhook_port)
        await site.start()
        log.info(
            "webhook_listening", host=self.settings.webhook_host, port=self.settings.webhook_port
        )

    async def stop(self) -> None:
        # AppRunner.cleanup stops accepting and waits for requests in flight to finish.
        if self._runner is not None:
            await self._runner.cleanup()
        if self._keys is not None:
            self._keys.stop()

    async def receive(self, request: web.Request) -> web.Response:
        """Handle one delivery from the case management system."""
        started = time.perf_counter()
        if (request.content_length or 0) > self.settings.webhook_max_body_bytes:
            return self._too_large()
        try:
            async with asyncio.timeout(self.settings.webhook_read_timeout_s):
                raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large()
        except TimeoutError:
            return self._too_slow()
        EVENTS_IN.labels(SocialCareWebhook.name, "social_care").inc()
        signature = request.headers.get("X-Signature", "")
        if not hmac.compare_digest(signature, sign(self._secret, raw)):
            log.warning("webhook_signature_rejected", has_signature=bool(signature))
            return error(401, "invalid_signature", "X-Signature is missing or does not match")
        key = request.headers.get("Idempotency-Key", "")
        digest = hashlib.sha256(raw).hexdigest()
        keys = self._require_keys()
        try:
            wait_s = self.settings.delivery_timeout_s
            answer = await keys.previous(key, digest, wait_s) if key else None
            if answer is None:
                answer = await self._answer(request, raw, key, started)
                if key:
                    await keys.remember(key, digest, answer)
        except Conflict:
            return error(409, "idempotency_conflict", "Idempotency-Key was used with another body")
        except TransientError as exc:
            log.warning("webhook_kafka_unavailable", error=str(exc))
            return error(503, "unavailable", "cannot store the event now; retry later")
        return web.json_response(answer.body, status=answer.status)

    async def _answer(self, request: web.Request, raw: bytes, key: str, started: float) -> Answer:
        runtime = self._require_runtime()
        try:
            event = self._parse(request, raw, key)
            await runtime.emit(event, started)
        except BadInput as exc:
            await runtime.dead_letter(raw, f"{exc.field or 'body'}: {exc.reason}", source=PATH)
            return Answer(400, {"error": "invalid_body", "detail": str(exc)})
        return Answer(202, {"event_id": event.envelope.event_id})

    def _parse(self, request: web.Request, raw: bytes, key: str) -> SocialCareEvent:
        if not key:
            raise BadInput("header is required", field="Idempotency-Key")
        if request.content_type != "application/json":
            raise BadInput("must be application/json", field="Content-Type")
        body = parse_body(raw)
        runtime = self._require_runtime()
        return to_event(body, runtime.pseudonyms, self.settings.webhook_source_system, key)

    def _require_runtime(self) -> ConnectorRuntime:
        if self._runtime is None:
            raise RuntimeError("the webhook connector is not started")
        return self._runtime

    def _require_keys(self) -> IdempotencyStore:
        if self._keys is None:
            raise RuntimeError("the webhook connector is not started")
        return self._keys

    def _too_slow(self) -> web.Response:
        limit = self.settings.webhook_read_timeout_s
        answer = error(408, "request_timeout", f"body was not sent whole within {limit:g} s")
        answer.force_close()
        return answer

    def _too_large(self) -> web.Response:
        limit = self.settings.webhook_max_body_bytes
        return error(413, "body_too_large", f"body is larger than {limit} bytes")
