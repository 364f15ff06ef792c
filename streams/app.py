"""The Faust application: processors and the coordinator API, wired from settings."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import faust

from backbone.codec import AvroCodec, SchemaStore
from backbone.pseudonyms import Pseudonymiser
from backbone.topics import Topics, ensure_topics
from streams.alerting.lifecycle_agent import AlertLifecycle
from streams.alerting.processor import AlertProcessor
from streams.alerting.rules import RuleSet, load_rules
from streams.api.alert_pages import AlertApi
from streams.api.audit import AuditTrail
from streams.api.coordinator import CoordinatorApi
from streams.api.coordinator_page import serve_coordinator_page
from streams.api.identity_pages import IdentityPages
from streams.framing.changelog import TableChangelog
from streams.framing.person_events import PersonEventsFanOut
from streams.identity.processor import Identity
from streams.operations.dead_letters import DeadLetters
from streams.operations.faust_sensors import bridge_faust_sensors
from streams.operations.lag import watch_consumer_lag
from streams.operations.table_memory import watch_table_memory
from streams.settings import WorkerSettings
from streams.timeline.processor import Timelines
from streams.topology import (
    Handlers,
    declare_agents,
    declare_channels,
    declare_framer,
    declare_tables,
)


class WorkerApp(faust.App):
    """Faust's app, stopping without waiting for events it will never finish."""

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        # On a stop Faust first waits until every event it fetched is acked, and after a
        # rebalance one may never be (a message of the alerts topic, with both its agents
        # idle): the worker hung on SIGTERM until it was killed. Unacked events are not
        # committed, so whoever owns their partition next handles them; rebalances still wait.
        if not self.should_stop:
            await super()._consumer_wait_empty(consumer, logger)


def create_app(settings: WorkerSettings, rules: RuleSet | None = None) -> faust.App:
    """A Faust app with the identity, timeline, alert and alert lifecycle processors and the
    coordinator API.

    Without `rules`, the rule file of the settings is loaded (RuleFileError names the rule and
    field in error).
    """
    if rules is None:
        rules = load_rules(settings.alert_rules_file)
    app = WorkerApp(
        f"{settings.topic_prefix}-streams",
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        store="rocksdb://" if settings.worker_store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir / "worker"),
        web_host=settings.worker_host,
        web_port=settings.worker_port,
        # Sent to the group with the assignment: other workers forward requests there.
        canonical_url=settings.worker_url,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.worker_session_timeout_s,
        autodiscover=False,
    )
    bridge_faust_sensors(app)
    # Every consumer group of this deployment, the workers' own included.
    watch_consumer_lag(app, settings.kafka_bootstrap, f"{settings.topic_prefix}-")
    codec = AvroCodec(SchemaStore(settings.schemas_dir))
    topics = Topics(settings.topic_prefix)
    channels = declare_channels(app, topics, settings.partitions)
    changelog = TableChangelog(settings.kafka_bootstrap, f"{settings.topic_prefix}-tables")
    tables = declare_tables(app, changelog)
    dead_letters = DeadLetters(channels.dead_letter, codec)
    identity = Identity(channels, tables, codec, dead_letters, settings.partitions)
    app.on_partitions_assigned.connect(identity.index_outdated)
    timelines = Timelines(channels, tables, codec, dead_letters, settings.partitions)
    lifecycle = AlertLifecycle(app, channels, tables, codec, dead_letters, settings, os.environ)
    alerting = AlertProcessor(
        channels,
        tables,
        codec,
        rules,
        lateness=timedelta(seconds=settings.alert_lateness_s),
        partitions=settings.partitions,
    )
    declare_framer(
        app,
        settings.kafka_bootstrap,
        f"{settings.topic_prefix}-framer",
        topics,
        codec,
        max_events=settings.worker_frame_max_events,
        session_timeout_s=settings.worker_session_timeout_s,
    )
    declare_agents(
        app,
        channels,
        Handlers(
            route_records=identity.on_record_frame,
            resolve=identity.on_resolver_input,
            keep_links=identity.on_decisions,
            record_person_events=PersonEventsFanOut(
                codec, dead_letters, [timelines.record_events, alerting.evaluate]
            ).on_frame,
            change_timeline=timelines.on_identity_changes,
            update_alert_view=alerting.on_update,
            merge_alert_views=alerting.on_identity_changes,
            follow_alert_owners=alerting.on_alert_step,
            apply_alert_step=lifecycle.apply,
            move_alert_clock=alerting.tick,
            escalate_alerts=lifecycle.escalate_overdue,
        ),
        alert_clock_s=settings.alert_timer_interval_s,
        escalation_check_s=settings.alert_escalation_check_s,
        changelog=changelog,
    )
    api = CoordinatorApi(
        app,
        token_secret=settings.token_secret.get_secret_value().encode(),
        pseudonyms=Pseudonymiser(settings.pseudonym_key.get_secret_value().encode()),
        audit=AuditTrail(channels.audit, codec),
        identity=identity,
        timelines=timelines,
    )
    IdentityPages(api)
    AlertApi(api, lifecycle, settings.alert_change_timeout_s)
    serve_coordinator_page(app)
    _bound_table_memory(app, settings)
    watch_table_memory(app)
    return app


def _bound_table_memory(app: faust.App, settings: WorkerSettings) -> None:
    """Give every table's RocksDB small memtables and block cache.

    Faust's defaults (64 MiB write buffers, three of them, and a 2 GiB block cache) apply per
    table partition, and a worker holds about thirty: its memory would grow with the events
    processed for gigabytes. The stores open when partitions are assigned, so this must run
    before the worker starts.
    """
    mib = 1024 * 1024
    for table in app.tables.values():
        table.options = {
            "write_buffer_size": settings.worker_table_write_buffer_mib * mib,
            "max_write_buffer_number": 2,
            "block_cache_size": settings.worker_table_cache_mib * mib,
        }


def run_worker(settings: WorkerSettings) -> None:
    """Run one worker until SIGTERM/SIGINT; several workers with one prefix share the work."""
    # The rule file first: a wrong one stops the worker before it touches Kafka.
    rules = load_rules(settings.alert_rules_file)
    ensure_topics(settings)
    (settings.data_dir / "worker").mkdir(parents=True, exist_ok=True)
    app = create_app(settings, rules)
    worker = faust.Worker(app, loglevel=settings.log_level, override_logging=False, quiet=True)
    worker.execute_from_commandline()
