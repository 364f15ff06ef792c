"""Settings of the notifications (the routing file, the SMTP relay, the retry policy), and
the Notifier they describe.

A mixin for the worker's settings (same `BACKBONE_` namespace, every field `notify_...`).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.alerting.notifications.channel import Channel, DeadLetterSink
from streams.alerting.notifications.delivery_log import DeliveryLog
from streams.alerting.notifications.email_channel import EmailChannel
from streams.alerting.notifications.notifier import Notifier
from streams.alerting.notifications.retry import RetryPolicy
from streams.alerting.notifications.routing import SAMPLE_ROUTING, ChannelKind, load_routing
from streams.alerting.notifications.webhook_channel import WebhookChannel


class NotificationSettings(BaseSettings):
    """Where alerts go and how hard the channels try."""

    model_config = SettingsConfigDict(env_prefix="BACKBONE_", frozen=True, extra="ignore")

    notify_routing_file: Path = Field(
        SAMPLE_ROUTING, description="YAML routing file: team -> webhook / email channels"
    )
    notify_smtp_host: str = Field("127.0.0.1", description="SMTP relay host for email channels")
    notify_smtp_port: int = Field(25, ge=1, le=65535, description="SMTP relay port")
    notify_smtp_sender: str = Field(
        "backbone-alerts@example.org", description="From address of notification emails"
    )
    notify_tries: int = Field(5, ge=1, description="Tries per delivery before dead-lettering")
    notify_backoff_base: float = Field(
        0.5, gt=0, description="Seconds before the second try; doubles each further try"
    )
    notify_backoff_max: float = Field(30.0, gt=0, description="Longest wait between two tries")
    notify_timeout: float = Field(10.0, gt=0, description="Seconds one webhook/SMTP try may take")


def build_notifier(
    settings: NotificationSettings,
    delivery_store: MutableMapping[str, str],
    dead_letter: DeadLetterSink,
    environ: Mapping[str, str],
) -> Notifier:
    """A Notifier over the routing file, the SMTP relay and the retry policy the settings
    name; the routing (webhook secrets from `environ` included) is validated here, at start."""
    routing = load_routing(settings.notify_routing_file, environ)
    policy = RetryPolicy(
        tries=settings.notify_tries,
        base_delay=settings.notify_backoff_base,
        max_delay=settings.notify_backoff_max,
    )
    channels: dict[ChannelKind, Channel] = {
        "webhook": WebhookChannel(policy, dead_letter, timeout=settings.notify_timeout),
        "email": EmailChannel(
            settings.notify_smtp_host,
            settings.notify_smtp_port,
            settings.notify_smtp_sender,
            policy,
            dead_letter,
            timeout=settings.notify_timeout,
        ),
    }
    return Notifier(routing, channels, DeliveryLog(delivery_store))
