"""Topic names, and creating the topics before anything reads or writes them.

Topics are created explicitly, with the configured partition count, because Faust requires
tables to be co-partitioned with their source topics and broker auto-creation would give
whatever the broker's default is.
"""

from __future__ import annotations

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
    def audit(self) -> str:
        """Every coordinator API request: who, why, what, outcome."""
        return f"{self.prefix}.audit"

    def all_agency_events(self) -> list[str]:
        return [self.agency_events(agency) for agency in Agency]

    def all(self) -> list[str]:
        return [*self.all_agency_events(), self.dead_letter, self.person_events, self.audit]


def ensure_topics(settings: BackboneSettings, timeout_s: float = 30.0) -> None:
    """Create the backbone's topics that do not exist yet; existing ones are left alone."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except Exception as exc:
        raise TransientError(
            f"Kafka at {settings.kafka_bootstrap} is not reachable: {exc}"
        ) from exc
    missing = [
        NewTopic(name, settings.partitions, settings.replication_factor)
        for name in Topics(settings.topic_prefix).all()
        if name not in existing
    ]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result()
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another process won the race
                raise TransientError(f"cannot create topic {name}: {exc}") from exc
