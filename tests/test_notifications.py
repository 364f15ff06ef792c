"""Notifications against real receivers on loopback: an aiosmtpd SMTP server and an aiohttp
webhook receiver that verifies signatures and drops repeated idempotency keys.

No Kafka here: the package has no Faust; a dict plays the Faust table of the delivery log and
a list plays the dead-letter producer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from cli.processes import free_port
from streams.alerting.alert import Alert, ExplainedEvent, Explanation
from streams.alerting.notifications import (
    DeadLetter,
    DeliveryLog,
    DeliveryOutcome,
    EmailChannel,
    Notifier,
    RetryPolicy,
    Routing,
    RoutingFileError,
    WebhookChannel,
    delivery_key,
    load_routing,
    parse_routing,
    signature,
)
from streams.alerting.notifications.routing import SAMPLE_ROUTING
from streams.alerting.rules import load_rules

SECRET = "webhook-secret-for-tests"
SECRETS = {"HOOK_SECRET": SECRET}
DEADLINE = 5.0


# --- the receivers -----------------------------------------------------------------------


@dataclass
class MailRecorder:
    """aiosmtpd handler: keeps every message; `unique` dedups by Message-ID like a mailbox."""

    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        self.messages.append(message_from_bytes(content))
        return "250 OK"

    def unique(self) -> dict[str, Message]:
        return {str(message["Message-ID"]): message for message in self.messages}


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, MailRecorder]]:
    recorder = MailRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, recorder
    finally:
        controller.stop()


@dataclass
class WebhookReceiver:
    """Verifies `X-Signature`, answers 503 to the first `fail_first` requests, dedups keys."""

    secret: str
    fail_first: int = 0
    requests: list[str] = field(default_factory=list)  # idempotency key of every request
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> body
    repeats_dropped: int = 0
    bad_signatures: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("Idempotency-Key", "")
        self.requests.append(key)
        if len(self.requests) <= self.fail_first:
            return web.Response(status=503)
        expected = signature(self.secret, body)
        if not hmac.compare_digest(expected, request.headers.get("X-Signature", "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        if key in self.accepted:
            self.repeats_dropped += 1
            return web.Response(status=200, text="already processed")
        self.accepted[key] = json.loads(body)
        return web.Response(status=200)


@asynccontextmanager
async def webhook_receiver(
    secret: str = SECRET, fail_first: int = 0
) -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=secret, fail_first=fail_first)
    app = web.Application()
    app.router.add_post("/hooks/{team}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.url = f"http://127.0.0.1:{port}/hooks/team"
    try:
        yield receiver
    finally:
        await runner.cleanup()


# --- what is sent ------------------------------------------------------------------------


def an_alert(alert_id: str = "alert-1") -> Alert:
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    event = ExplainedEvent("ev-1", "discharged", "health", at.isoformat(), "person-hash")
    return Alert(
        alert_id=alert_id,
        rule_id="R1",
        rule_version=1,
        rule_name="discharge-into-homelessness",
        severity="high",
        teams=("discharge", "housing"),
        person_id="person-hash",
        household_person_ids=(),
        anchor_event_id="ev-1",
        anchor_at=at,
        matched_at=at,
        text="Patient discharged with an open homelessness application",
        explanation=Explanation("R1", 1, (event,)),
    )


def routing_to(hook_url: str) -> Routing:
    """discharge -> webhook + email; housing -> the same email (one recipient, one delivery)."""
    return parse_routing(
        f"""
teams:
  discharge:
    - webhook: {{url: "{hook_url}", secret_env: HOOK_SECRET}}
    - email: {{to: discharge@example.org}}
  housing:
    - email: {{to: discharge@example.org}}
""",
        SECRETS,
    )


@dataclass
class DeadLetters:
    """Plays the Kafka dead-letter producer the wiring will pass."""

    received: list[DeadLetter] = field(default_factory=list)

    async def __call__(self, dead_letter: DeadLetter) -> None:
        self.received.append(dead_letter)


def fast_policy(tries: int = 3, sleeps: list[float] | None = None) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        await asyncio.sleep(seconds)

    return RetryPolicy(
        tries=tries, base_delay=0.02, max_delay=1.0, rng=random.Random(7), sleep=sleep
    )


def notifier(
    routing: Routing,
    smtp_port: int,
    store: MutableMapping[str, str],
    dead_letters: DeadLetters | None = None,
    policy: RetryPolicy | None = None,
) -> Notifier:
    sink = dead_letters if dead_letters is not None else DeadLetters()
    policy = policy or fast_policy()
    return Notifier(
        routing,
        {
            "webhook": WebhookChannel(policy, sink, timeout=2.0),
            "email": EmailChannel("127.0.0.1", smtp_port, "alerts@example.org", policy, sink),
        },
        DeliveryLog(store),
    )


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# --- routing -----------------------------------------------------------------------------


def test_sample_routing_covers_every_team_the_shipped_rules_notify() -> None:
    environ = {
        "BACKBONE_NOTIFY_SECRET_HEALTH": "h",
        "BACKBONE_NOTIFY_SECRET_SOCIAL_CARE": "s",
        "BACKBONE_NOTIFY_SECRET_HOUSING": "o",
    }
    routing = load_routing(SAMPLE_ROUTING, environ)
    routing.require(team for rule in load_rules().rules for team in rule.notify)
    assert routing.recipients_for(["housing-officers"])[0].kind == "webhook"


def test_routing_errors_name_the_team_and_the_field() -> None:
    text = """
teams:
  housing-officers:
    - webhook: {url: "not a url", secret_env: HOOK_SECRET}
  work-coaches:
    - email: {to: nobody}
  social-care-duty:
    - webhook: {url: "http://127.0.0.1:1/x", secret_env: MISSING_SECRET}
  safeguarding-lead:
    - {email: {to: a@example.org}, webhook: {url: "http://127.0.0.1:1/x", secret_env: X}}
  social-prescribing: []
"""
    with pytest.raises(RoutingFileError) as raised:
        parse_routing(text, SECRETS)
    problems = "\n".join(raised.value.problems)
    assert "team housing-officers channels[0].webhook.url:" in problems
    assert "team work-coaches channels[0].email.to:" in problems
    assert "team social-care-duty channels[0].webhook.secret_env: MISSING_SECRET is not set" in (
        problems
    )
    assert "team safeguarding-lead channels[0]: a channel is either" in problems
    assert "team social-prescribing channels:" in problems
    shared_url = """
teams:
  a: [{webhook: {url: "http://127.0.0.1:1/x", secret_env: HOOK_SECRET}}]
  b: [{webhook: {url: "http://127.0.0.1:1/x", secret_env: OTHER_SECRET}}]
"""
    with pytest.raises(RoutingFileError, match=r"team b webhook.secret_env: .* by team a"):
        parse_routing(shared_url, {**SECRETS, "OTHER_SECRET": "other"})
    with pytest.raises(RoutingFileError, match="team hospital-safeguarding: notified by a rule"):
        parse_routing("teams: {}", {}).require(["hospital-safeguarding"])


# --- delivery ----------------------------------------------------------------------------


def test_signed_webhook_and_email_carry_the_alert_and_the_delivery_key(
    smtp_server: tuple[int, MailRecorder],
) -> None:
    smtp_port, mailbox = smtp_server

    async def scenario() -> None:
        async with webhook_receiver() as hook:
            sender = notifier(routing_to(hook.url), smtp_port, {})
            results = await sender.notify(an_alert())
            await sender.close()
            assert [(r.recipient.kind, r.outcome) for r in results] == [
                ("webhook", DeliveryOutcome.DELIVERED),
                ("email", DeliveryOutcome.DELIVERED),
            ]
            hook_key, mail_key = (r.key for r in results)
            assert hook.bad_signatures == 0
            assert list(hook.accepted) == [hook_key]
            body = hook.accepted[hook_key]
            assert body["alert"]["alert_id"] == "alert-1"
            assert body["alert"]["explanation"]["events"][0]["event_id"] == "ev-1"
            assert (len(mailbox.messages), mailbox.messages[0]["X-Backbone-Delivery"]) == (
                1,
                mail_key,
            )
            mail = mailbox.messages[0]
            assert mail["Message-ID"] == f"<{mail_key}@backbone.invalid>"
            assert "[high] R1 discharge-into-homelessness" in str(mail["Subject"])
            text = mail.get_payload(decode=True)
            assert isinstance(text, bytes)
            assert b"Patient discharged with an open homelessness application" in text
            assert mail_key.encode() in text

    asyncio.run(scenario())


def test_a_wrong_secret_is_refused_and_dead_lettered_without_retries(
    smtp_server: tuple[int, MailRecorder],
) -> None:
    async def scenario() -> None:
        async with webhook_receiver(secret="the-receiver-expects-another") as hook:
            dead = DeadLetters()
            store: dict[str, str] = {}
            sender = notifier(routing_to(hook.url), smtp_server[0], store, dead)
            await sender.notify(an_alert(), teams=["discharge"])
            await sender.close()
            assert (hook.bad_signatures, len(hook.requests)) == (1, 1)
            assert [(d.reason, d.attempts) for d in dead.received] == [("refused: HTTP 401", 1)]

    asyncio.run(scenario())


def test_each_recipients_status_is_read_from_the_delivery_log(
    smtp_server: tuple[int, MailRecorder],
) -> None:
    async def scenario() -> None:
        async with webhook_receiver(secret="the-receiver-expects-another") as hook:
            sender = notifier(routing_to(hook.url), smtp_server[0], {})
            alert = an_alert()

            def statuses() -> list[tuple[str, str, str, str]]:
                found = sender.deliveries(alert.alert_id, alert.teams, ["open"])
                return [(d["team"], d["channel"], d["recipient"], d["status"]) for d in found]

            # Before anything ended, every recipient is still being tried.
            assert {status for *_, status in statuses()} == {"retrying"}
            await sender.notify(alert)
            await sender.close()
            assert statuses() == [
                ("discharge", "webhook", hook.url, "failed"),
                ("discharge", "email", "discharge@example.org", "sent"),
                ("housing", "email", "discharge@example.org", "sent"),
            ]

    asyncio.run(scenario())


def test_webhook_retries_with_exponential_backoff_then_succeeds(
    smtp_server: tuple[int, MailRecorder],
) -> None:
    async def scenario() -> None:
        async with webhook_receiver(fail_first=2) as hook:
            sleeps: list[float] = []
            dead = DeadLetters()
            sender = notifier(
                routing_to(hook.url), smtp_server[0], {}, dead, fast_policy(4, sleeps)
            )
            results = await sender.notify(an_alert())
            await sender.close()
            hook_result = next(r for r in results if r.recipient.kind == "webhook")
            assert hook_result.outcome is DeliveryOutcome.DELIVERED
            # Three tries of the same delivery, under one key; the third is accepted.
            assert hook.requests == [hook_result.key] * 3
            assert list(hook.accepted) == [hook_result.key]
            # Waits double (0.02 s, then 0.04 s), each shortened by up to 50 % jitter.
            assert len(sleeps) == 2
            assert 0.01 <= sleeps[0] <= 0.02
            assert 0.02 <= sleeps[1] <= 0.04
            assert dead.received == []

    asyncio.run(scenario())


def test_after_the_last_try_the_delivery_is_dead_lettered_with_its_reason(
    smtp_server: tuple[int, MailRecorder],
) -> None:
    async def scenario() -> None:
        async with webhook_receiver(fail_first=100) as hook:
            dead = DeadLetters()
            store: dict[str, str] = {}
            sender = notifier(routing_to(hook.url), smtp_server[0], store, dead)
            results = await sender.notify(an_alert(), teams=["discharge"])
            # Nobody listens here: connection refused is retried like a 5xx.
            unreachable = routing_to(f"http://127.0.0.1:{free_port()}/hooks/gone")
            gone = notifier(unreachable, smtp_server[0], {}, dead)
            await gone.notify(an_alert("alert-2"), teams=["discharge"])
            await sender.close()
            await gone.close()

            assert len(hook.requests) == 3
            first, second = dead.received
            assert first.delivery.key == results[0].key
            assert first.delivery.alert.alert_id == "alert-1"
            assert (first.attempts, first.reason) == (3, "gave up, last try 3/3: HTTP 503")
            assert second.attempts == 3
            assert "ClientConnectorError" in second.reason
            # Dead-lettered is an end too: a restarted worker does not storm the receiver.
            assert DeliveryLog(store).outcome(first.delivery.key) is DeliveryOutcome.DEAD_LETTERED

    asyncio.run(scenario())


def test_each_recipient_gets_the_alert_once_across_restarts(
    smtp_server: tuple[int, MailRecorder],
) -> None:
    smtp_port, mailbox = smtp_server

    async def scenario() -> None:
        async with webhook_receiver() as hook:
            routing = routing_to(hook.url)
            store: dict[str, str] = {}
            first = notifier(routing, smtp_port, store)
            sent = await first.notify(an_alert())
            await first.close()

            # Restart with the delivery log intact: nothing is sent again.
            restarted = notifier(routing, smtp_port, store)
            again = await restarted.notify(an_alert())
            await restarted.close()
            assert [r.sent for r in again] == [False, False]
            assert (len(hook.requests), len(mailbox.messages)) == (1, 1)

            # The worker died after sending, before the log kept the record: the next one
            # sends again under the same keys, and the receivers drop the repeats.
            lost_record: dict[str, str] = {}
            after_crash = notifier(routing, smtp_port, lost_record)
            resent = await after_crash.notify(an_alert())
            await after_crash.close()
            assert [r.key for r in resent] == [r.key for r in sent]
            assert (len(hook.requests), len(mailbox.messages)) == (2, 2)
            assert (len(hook.accepted), hook.repeats_dropped) == (1, 1)
            assert len(mailbox.unique()) == 1

            # An escalation is another notification of the same alert, with its own key.
            escalating = notifier(routing, smtp_port, store)
            escalated = await escalating.notify(an_alert(), "escalated")
            await escalating.close()
            assert {r.key for r in escalated}.isdisjoint(r.key for r in sent)

    asyncio.run(scenario())


def test_a_withdrawal_is_told_once_to_those_who_received_the_alert_and_says_why(
    smtp_server: tuple[int, MailRecorder],
) -> None:
    smtp_port, mailbox = smtp_server

    async def scenario() -> None:
        async with webhook_receiver(secret="the-receiver-expects-another") as refusing:
            store: dict[str, str] = {}
            sender = notifier(routing_to(refusing.url), smtp_port, store)
            opened = await sender.notify(an_alert())
            assert [r.outcome for r in opened] == [
                DeliveryOutcome.DEAD_LETTERED,  # the webhook refused: that team never heard
                DeliveryOutcome.DELIVERED,
            ]
            reason = "housing homelessness application closed of 2026-03-01 arrived late"
            told = await sender.withdraw(an_alert(), reason)
            again = await sender.withdraw(an_alert(), reason)
            await sender.close()

            assert [(r.recipient.kind, r.sent) for r in told] == [("email", True)]
            assert [r.sent for r in again] == [False]
            shown = sender.deliveries("alert-1", ("discharge", "housing"), ["withdrawn"])
            assert [(d["team"], d["channel"], d["status"]) for d in shown] == [
                ("discharge", "email", "sent"),
                ("housing", "email", "sent"),
            ]
            assert len(refusing.requests) == 1  # only the refused open notification
            assert len(mailbox.messages) == 2
            withdrawal = mailbox.messages[1]
            assert "(withdrawn)" in str(withdrawal["Subject"])
            text = withdrawal.get_payload(decode=True)
            assert isinstance(text, bytes)
            assert f"WITHDRAWN: {reason}".encode() in text

    asyncio.run(scenario())


class DiesBeforeRecording(dict[str, str]):
    """A log store whose worker dies between the confirmed send and the record."""

    def __setitem__(self, key: str, value: str) -> None:
        raise RuntimeError("worker died before recording")


def test_a_worker_killed_between_send_and_record_still_delivers_once(
    smtp_server: tuple[int, MailRecorder],
) -> None:
    smtp_port, mailbox = smtp_server

    async def scenario() -> None:
        async with webhook_receiver() as hook:
            routing = routing_to(hook.url)
            dying = notifier(routing, smtp_port, DiesBeforeRecording())
            with pytest.raises(RuntimeError, match="worker died"):
                await dying.notify(an_alert())
            # Both sends were under way when the worker "died" recording the first one.
            await eventually(lambda: len(mailbox.messages) == 1, "the first worker's email")
            await eventually(lambda: len(hook.accepted) == 1, "the first worker's webhook")
            await dying.close()

            store: dict[str, str] = {}
            successor = notifier(routing, smtp_port, store)
            results = await successor.notify(an_alert())
            await successor.close()
            assert all(r.sent and r.outcome is DeliveryOutcome.DELIVERED for r in results)
            assert (len(hook.accepted), hook.repeats_dropped, len(mailbox.unique())) == (1, 1, 1)
            assert set(store) == {r.key for r in results}

    asyncio.run(scenario())


def test_delivery_keys_are_deterministic_and_distinct_per_recipient_and_stage() -> None:
    routing = routing_to("http://127.0.0.1:1/hooks/x")
    hook, mail = routing.recipients_for(["discharge", "housing"])
    assert delivery_key("a", "open", hook) == delivery_key("a", "open", hook)
    assert len({delivery_key("a", s, r) for s in ("open", "escalated") for r in (hook, mail)}) == 4
