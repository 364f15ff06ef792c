"""The topic catalogue (every topic, its key, value, partitions and retention), and creating
the topics before anything reads or writes them.

Topics are created explicitly, with the configured partition count, because Faust requires
tables to be co-partitioned with their source topics and broker auto-creation would give
whatever the broker's default is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from backbone.contracts import Agency
from backbone.errors import TransientError
from backbone.settings import BackboneSettings

FOREVER = "-1"
DAY_MS = str(24 * 3600 * 1000)
WEEK_MS = str(7 * 24 * 3600 * 1000)
MONTH_MS = str(30 * 24 * 3600 * 1000)
# The longest the social care webhook may remember an Idempotency-Key's answer: its topic's
# retention, which bounds the topic whatever the connector's own (shorter) setting.
WEBHOOK_IDEMPOTENCY_RETENTION_S = 7 * 24 * 3600


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the catalogue: what it carries and how it is created.

    `partitions` None means the deployment's partition count (`BACKBONE_PARTITIONS`), shared by
    every topic whose keys Faust tables must be co-partitioned with.
    """

    name: str
    key: str
    value: str
    partitions: int | None
    config: dict[str, str]


@dataclass(frozen=True)
class Topics:
    """The backbone's topics under one prefix: their names, and the catalogue (`specs`)."""

    prefix: str

    def specs(self) -> list[TopicSpec]:
        """Every topic the backbone creates, with its key, value and retention.

        Agency events, person events, decisions, changes, alerts and the audit trail are kept
        (retention -1): timelines, alert views and the lookup are rebuilt from them, and the
        audit trail is the record of who read what. Frames of agency events can be framed again
        from the agency topics, so they keep a week; dead letters keep 30 days, the time to
        look at them and replay them; the webhook's idempotency answers keep a week at most.
        """
        agency = [
            TopicSpec(
                name, "record id", "the agency's event schema", None, {"retention.ms": FOREVER}
            )
            for name in self.all_agency_events()
        ]
        return [
            *agency,
            TopicSpec(
                self.record_frames,
                "none",
                "EventFrame (agency events)",
                None,
                {"retention.ms": WEEK_MS},
            ),
            TopicSpec(
                self.identity_input,
                "record id",
                "EventFrame (agency events); IdentityCommand",
                1,
                {"retention.ms": FOREVER},
            ),
            TopicSpec(
                self.person_events,
                "none",
                "EventFrame (agency events by person)",
                None,
                {"retention.ms": FOREVER},
            ),
            TopicSpec(
                self.identity_decisions,
                "none",
                "EventFrame (decisions by record)",
                None,
                {"retention.ms": FOREVER},
            ),
            TopicSpec(
                self.identity_changes,
                "none",
                "EventFrame (changes by person)",
                None,
                {"retention.ms": FOREVER},
            ),
            TopicSpec(
                self.alert_updates,
                "none",
                "EventFrame (alert view updates)",
                None,
                {"retention.ms": FOREVER},
            ),
            TopicSpec(self.alerts, "alert id", "AlertEvent", 1, {"retention.ms": FOREVER}),
            TopicSpec(self.audit, "coordinator", "AuditRecord", None, {"retention.ms": FOREVER}),
            TopicSpec(
                self.dead_letter,
                "processor or connector",
                "the raw input",
                None,
                {"retention.ms": MONTH_MS},
            ),
            TopicSpec(
                self.connector_positions,
                "connector and source",
                "JSON position",
                1,
                {"cleanup.policy": "compact"},
            ),
            TopicSpec(
                self.webhook_idempotency,
                "Idempotency-Key",
                "JSON answer",
                1,
                {
                    "cleanup.policy": "compact,delete",
                    "retention.ms": str(WEBHOOK_IDEMPOTENCY_RETENTION_S * 1000),
                    # Retention deletes whole closed segments: roll daily so a week means a week.
                    "segment.ms": DAY_MS,
                },
            ),
        ]

    def agency_events(self, agency: Agency) -> str:
        """Where an agency's connector publishes, keyed by the subject's record id."""
        return f"{self.prefix}.{agency.value}.events"

    @property
    def dead_letter(self) -> str:
        """Raw input no connector could understand, with the reason in headers."""
        return f"{self.prefix}.deadletter"

    @property
    def record_frames(self) -> str:
        """Agency events in frames, on the agency topics' partition numbers (the framer's
        output, the identity router's input)."""
        return f"{self.prefix}.record-frames"

    @property
    def person_events(self) -> str:
        """Every agency event re-keyed by person id, after identity resolution (frames)."""
        return f"{self.prefix}.person-events"

    @property
    def identity_input(self) -> str:
        """New and changed records' events and identity commands, on one partition, for the
        one identity resolver (README)."""
        return f"{self.prefix}.identity-input"

    @property
    def identity_decisions(self) -> str:
        """Each record's person and fingerprint as decided (and moved by merges), by record."""
        return f"{self.prefix}.identity-decisions"

    @property
    def identity_changes(self) -> str:
        """Per person: records linked to it, merges into another person, splits, erasures."""
        return f"{self.prefix}.identity-changes"

    @property
    def audit(self) -> str:
        """Every coordinator API request: who, why, what, outcome."""
        return f"{self.prefix}.audit"

    @property
    def alerts(self) -> str:
        """Every step of every alert's life (backbone.alerts.AlertEvent), keyed by alert id."""
        return f"{self.prefix}.alerts"

    @property
    def alert_updates(self) -> str:
        """The alert processor's own updates for persons' partitions, in frames (each update
        keyed by person id): household members' entries, merged persons' views, deadline
        checks, closed alerts (backbone.alerts.AlertViewUpdate)."""
        return f"{self.prefix}.alert-updates"

    @property
    def connector_positions(self) -> str:
        """Each connector's durable position per source partition (compacted)."""
        return f"{self.prefix}.connector-positions"

    @property
    def webhook_idempotency(self) -> str:
        """The social care webhook's answer per Idempotency-Key (compacted, a week at most)."""
        return f"{self.prefix}.webhook-idempotency"

    def all_agency_events(self) -> list[str]:
        return [self.agency_events(agency) for agency in Agency]

    def all(self) -> list[str]:
        return [spec.name for spec in self.specs()]

    def layout(self, name: str, partitions: int) -> tuple[int, dict[str, str]]:
        """Partitions and configuration a topic is created with."""
        spec = next(spec for spec in self.specs() if spec.name == name)
        return spec.partitions or partitions, spec.config


def ensure_topics(settings: BackboneSettings, timeout_s: float = 30.0) -> None:
    """Create the backbone's topics that do not exist yet; existing ones are left alone."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except Exception as exc:
        raise TransientError(
            f"Kafka at {settings.kafka_bootstrap} is not reachable: {exc}"
        ) from exc
    topics = Topics(settings.topic_prefix)
    missing = []
    for name in topics.all():
        if name not in existing:
            partitions, config = topics.layout(name, settings.partitions)
            missing.append(NewTopic(name, partitions, settings.replication_factor, config=config))
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result()
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another process won the race
                raise TransientError(f"cannot create topic {name}: {exc}") from exc
    _wait_for_leaders(admin, [topic.topic for topic in missing], timeout_s)


def delete_topics(bootstrap: str, prefix: str, timeout_s: float = 30.0) -> None:
    """Delete every topic whose name starts with `prefix`, the workers' changelogs included:
    a broker slows down, and its heap fills, with every partition it keeps."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [
        name for name in admin.list_topics(timeout=timeout_s).topics if name.startswith(prefix)
    ]
    if names:
        for future in admin.delete_topics(names, operation_timeout=timeout_s).values():
            future.result()


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Block until every partition of the new topics has a leader: until then the first
    produce or offset lookup fails with NOT_LEADER_FOR_PARTITION."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout_s).topics
        if all(
            name in topics
            and topics[name].partitions
            and all(p.leader >= 0 for p in topics[name].partitions.values())
            for name in names
        ):
            return
        time.sleep(0.1)
    raise TransientError(f"topics {', '.join(names)} have no leader after {timeout_s:.0f} s")
