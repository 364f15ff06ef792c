"""Notifications of alerts to coordinators: routing by team, webhook and email channels,
retries with dead letters, and a delivery log that makes each notification arrive once per
recipient. No Faust here: the alert processor wires a Faust table in as the log's store and
a Kafka producer in as the dead-letter sink.
"""

from streams.alerting.notifications.channel import Channel, DeadLetter, DeadLetterSink, Delivery
from streams.alerting.notifications.delivery_log import DeliveryLog, DeliveryOutcome, delivery_key
from streams.alerting.notifications.email_channel import EmailChannel
from streams.alerting.notifications.notifier import Notification, Notifier
from streams.alerting.notifications.retry import RetryPolicy
from streams.alerting.notifications.routing import (
    Recipient,
    Routing,
    RoutingFileError,
    load_routing,
    parse_routing,
)
from streams.alerting.notifications.settings import NotificationSettings
from streams.alerting.notifications.webhook_channel import WebhookChannel, signature

__all__ = [
    "Channel",
    "DeadLetter",
    "DeadLetterSink",
    "Delivery",
    "DeliveryLog",
    "DeliveryOutcome",
    "EmailChannel",
    "Notification",
    "NotificationSettings",
    "Notifier",
    "Recipient",
    "RetryPolicy",
    "Routing",
    "RoutingFileError",
    "WebhookChannel",
    "delivery_key",
    "load_routing",
    "parse_routing",
    "signature",
]
