"""The worker on one page: every topic it reads or writes, every table, every agent and timer.

What each topic carries, its partitions and retention are the kernel's catalogue
(`backbone/topics.py`); here the topics become Faust channels, the tables are declared with
the partitions they are co-partitioned with, and every agent is named with the topic it reads
and the feature's handler that takes one message (a frame, or one event on the topics that
carry single events). The features (`identity`, `timeline`, `alerting`) hold the logic; they
create no topic, table or agent of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TableT
from mode import BaseSignalT

from backbone.codec import AvroCodec
from backbone.topics import Topics
from streams.framing.batched_table import BatchedTable
from streams.framing.changelog import TableChangelog
from streams.framing.framer import Framer

Handler = Callable[[faust.EventT[Any]], Awaitable[None]]
Table = TableT[str, Any]


@dataclass(frozen=True)
class Channels:
    """The topics the worker reads or writes (all raw bytes)."""

    record_frames: faust.TopicT  # agency events framed by record, agency partitions
    identity_input: faust.TopicT  # new and changed records' frames, IdentityCommands; 1 partition
    person_events: faust.TopicT  # frames of agency events by person
    identity_decisions: faust.TopicT  # frames of IdentityDecisions: record -> person, fingerprint
    identity_changes: faust.TopicT  # frames of IdentityChanges by person: links, merges, splits...
    alert_updates: faust.TopicT  # frames of AlertViewUpdates of persons' alert views, by person
    alerts: faust.TopicT  # AlertEvent per step of an alert; 1 partition
    audit: faust.TopicT  # AuditRecord per coordinator request
    dead_letter: faust.TopicT  # what a processor could not read, with the reason


def declare_channels(app: faust.App, topics: Topics, partitions: int) -> Channels:
    """The worker's topics as Faust channels, with the catalogue's partition counts."""

    def raw(name: str) -> faust.TopicT:
        count, _ = topics.layout(name, partitions)
        return app.topic(name, partitions=count, key_serializer="raw", value_serializer="raw")

    return Channels(
        record_frames=raw(topics.record_frames),
        identity_input=raw(topics.identity_input),
        person_events=raw(topics.person_events),
        identity_decisions=raw(topics.identity_decisions),
        identity_changes=raw(topics.identity_changes),
        alert_updates=raw(topics.alert_updates),
        alerts=raw(topics.alerts),
        audit=raw(topics.audit),
        dead_letter=raw(topics.dead_letter),
    )


@dataclass(frozen=True)
class Tables:
    """Every table, grouped by the partitions it lives on (its changelog's partitions)."""

    # Identity, keyed by record id, on the agency topics' partitions: record -> person.
    record_links: Table
    # Identity, on identity-input's one partition: the resolver's state.
    linkage_records: Table
    linkage_national_ids: Table
    linkage_parents: Table
    linkage_person_national_ids: Table
    linkage_counters: Table
    linkage_apart: Table
    linkage_members: Table
    review_queue: Table
    # Timeline and alerting, keyed by person id, on person-events' partitions.
    timelines: Table
    timeline_months: Table
    alert_views: Table
    alert_deadlines: Table
    alert_priors: Table
    # Alerting, on the alerts topic's one partition.
    alert_owners: Table
    alerts: Table
    delivery_log: Table
    # The frames' table writes go through it (the worker's); without one, through Faust.
    changelog: TableChangelog | None = None

    def batched(self, table: Table) -> BatchedTable:
        """The view of `table` that a frame's handler reads and writes."""
        return BatchedTable(table, self.changelog)


def declare_tables(app: faust.App, changelog: TableChangelog | None = None) -> Tables:
    """Every table of the worker (Faust creates each changelog topic)."""

    def table(name: str, partitions: int | None = None) -> Table:
        return app.Table(name, default=None, partitions=partitions)

    return Tables(
        record_links=table("record-links"),
        linkage_records=table("linkage-records", 1),
        linkage_national_ids=table("linkage-national-ids", 1),
        linkage_parents=table("linkage-parents", 1),
        linkage_person_national_ids=table("linkage-person-national-ids", 1),
        linkage_counters=table("linkage-counters", 1),
        linkage_apart=table("linkage-apart", 1),
        linkage_members=table("linkage-members", 1),
        review_queue=table("review-queue", 1),
        timelines=table("timelines"),
        timeline_months=table("timeline-months"),
        alert_views=table("alert-views"),
        alert_deadlines=table("alert-deadlines"),
        alert_priors=table("alert-priors"),
        alert_owners=table("alert-owners", 1),
        alerts=table("alerts", 1),
        delivery_log=table("delivery-log", 1),
        changelog=changelog,
    )


def agent(
    app: faust.App,
    source: faust.TopicT,
    name: str,
    handle: Handler,
    changelog: TableChangelog | None,
) -> None:
    """An agent that hands every message of `source` to `handle`, one at a time, and takes
    the next only once the broker has the table writes of this one (Faust may then commit)."""

    async def run(stream: faust.StreamT[Any]) -> AsyncIterator[None]:
        async for event in stream.events():
            await handle(event)
            if changelog is not None:
                await changelog.delivered()
            yield None

    app.agent(source, name=name)(run)


Timer = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Handlers:
    """The feature methods the agents and timers run (`streams/app.py` names them)."""

    route_records: Handler  # identity: known records to person-events, others to the resolver
    resolve: Handler  # identity: new and changed records, coordinators' and erasure commands
    keep_links: Handler  # identity: record-links from the decisions
    record_person_events: Handler  # timeline and alerting: each frame decoded once for both
    change_timeline: Handler  # timeline: links, merges, splits, erasures
    update_alert_view: Handler  # alerting: members' entries, merged views, checks, closures
    merge_alert_views: Handler  # alerting: a merged person's view to the survivor
    follow_alert_owners: Handler  # alerting: whose each alert is; a resolved one is closed
    apply_alert_step: Handler  # alerting: the lifecycle (acknowledge, escalate, resolve)
    move_alert_clock: Timer  # alerting: event time with the wall clock, due absences
    escalate_alerts: Timer  # alerting: overdue open alerts


def declare_agents(
    app: faust.App,
    channels: Channels,
    handlers: Handlers,
    *,
    alert_clock_s: float,
    escalation_check_s: float,
    changelog: TableChangelog | None = None,
) -> None:
    """Every agent and timer of the worker: its name, what it reads, what runs it."""
    for name, source, handle in (
        ("identity-router", channels.record_frames, handlers.route_records),
        ("identity", channels.identity_input, handlers.resolve),
        ("identity-links", channels.identity_decisions, handlers.keep_links),
        ("person-events", channels.person_events, handlers.record_person_events),
        ("timeline-identity-changes", channels.identity_changes, handlers.change_timeline),
        ("alerts-updates", channels.alert_updates, handlers.update_alert_view),
        ("alerts-identity-changes", channels.identity_changes, handlers.merge_alert_views),
        ("alerts-owners", channels.alerts, handlers.follow_alert_owners),
        ("alert-lifecycle", channels.alerts, handlers.apply_alert_step),
    ):
        agent(app, source, name, handle, changelog)
    app.timer(alert_clock_s, name="alerts-clock")(handlers.move_alert_clock)
    app.timer(escalation_check_s, name="alert-lifecycle-escalation")(handlers.escalate_alerts)


def declare_framer(
    app: faust.App,
    bootstrap: str,
    group: str,
    topics: Topics,
    codec: AvroCodec,
    *,
    max_events: int,
    session_timeout_s: float,
) -> None:
    """The first hop, agency topics -> `record-frames`, beside the agents: on confluent-kafka
    in a thread of its own, its partitions shared by the workers' framer group, handed over
    after the same session timeout as the agents'."""
    framer = Framer(
        bootstrap,
        group,
        topics.all_agency_events(),
        topics.record_frames,
        codec,
        max_events_per_frame=max_events,
        session_timeout_s=session_timeout_s,
    )

    async def start_framer() -> None:
        framer.start()

    def stop_framer(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        framer.stop()

    app.task(start_framer)
    app.on_before_shutdown.connect(stop_framer)
