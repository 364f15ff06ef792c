"""Topic names, and creating the topics before anything reads or writes them.

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


@dataclass(frozen=True)
class Topics:
    """The backbone's topic names under one prefix."""

    prefix: str

    def agency_events(self, agency: Agency) -> str:
        """Where an agency's connector publishes, keyed by the subject's record id."""
        return f"{self.prefix}.{agency.value}.events"

    @property
    def dead_letter(self) -> str:
        """Raw input no connector could understand, with the reason in headers."""
        return f"{self.prefix}.deadletter"

    @property
    def person_events(self) -> str:
        """Every agency event re-keyed by person id, after identity resolution."""
        return f"{self.prefix}.person-events"

    @property
    def identity_input(self) -> str:
        """Every agency event on one partition, for the one identity resolver (README)."""
        return f"{self.prefix}.identity-input"

    @property
    def identity_decisions(self) -> str:
        """Each record's person as decided (and moved by merges), keyed by record id."""
        return f"{self.prefix}.identity-decisions"

    @property
    def identity_changes(self) -> str:
        """Per person, keyed by person id: records linked to it, merges into another person."""
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
        """The alert processor's own updates for a person's partition, keyed by person id:
        household members' entries, merged persons' views, deadline checks, closed alerts."""
        return f"{self.prefix}.alert-updates"

    @property
    def connector_positions(self) -> str:
        """Each connector's durable position per source partition (compacted)."""
        return f"{self.prefix}.connector-positions"

    def all_agency_events(self) -> list[str]:
        return [self.agency_events(agency) for agency in Agency]

    def all(self) -> list[str]:
        return [
            *self.all_agency_events(),
            self.dead_letter,
            self.person_events,
            self.identity_input,
            self.identity_decisions,
            self.identity_changes,
            self.audit,
            self.alerts,
            self.alert_updates,
            self.connector_positions,
        ]

    def layout(self, name: str, partitions: int) -> tuple[int, dict[str, str]]:
        """Partitions and configuration a topic is created with."""
        if name == self.connector_positions:
            # Latest position per key is all that matters; one partition keeps it simple.
            return 1, {"cleanup.policy": "compact"}
        if name in (self.identity_input, self.alerts):
            # One resolver sees every record: candidates across all persons; one lifecycle
            # owner holds every alert, so it can list and filter them locally (README).
            return 1, {}
        return partitions, {}


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
