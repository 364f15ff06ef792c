"""Go-live without an alert storm, on real parts: connectors started against agency systems
that already hold a risky situation publish it as their initial load, the timeline shows it as
the state found at go-live, no alert is raised for it, and the next change still raises one.

The jobcentre's tables in a fresh database of the project's PostgreSQL hold a sanction imposed
three days ago; last night's housing export, already in the drop folder, has the same person's
tenancy five weeks in arrears (R3's situation). A worker, the jobcentre CDC connector and the
housing connector then start as real processes against the real broker. Tonight's export
crosses eight weeks: R3 is raised for that, explained by the sanction found at go-live.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from backbone.codec import AvroCodec, SchemaStore
from backbone.settings import REPO_ROOT
from backbone.topics import Topics
from cli.processes import BackboneProcess, free_port, stop_all
from simulators.housing import HousingManagementSystem, Tenancy
from simulators.jobcentre import Jobseeker
from tests.conftest import Deployment, distinct_identity, jobcentre_database, wait_until
from tests.test_alert_processor import ALERT_ENV, WAIT_S, AlertLog

NOW = datetime.now(UTC)
LAST_NIGHT = NOW.date() - timedelta(days=1)
TONIGHT = NOW.date()


@dataclass
class GoLive:
    """What the test drives and reads: the housing system, the API, the alerts topic."""

    housing: HousingManagementSystem
    tenancy: Tenancy  # the tenant's tenancy as last night's export has it
    api: httpx.Client
    alerts: AlertLog

    def person_id(self, tenant_ref: str) -> str:
        """The person the tenant's housing record was resolved to."""
        found: list[str] = []

        def resolved() -> bool:
            params = {"agency": "housing", "id_type": "tenant_ref", "id": tenant_ref}
            answer = self.api.get("/persons/lookup", params=params)
            if answer.status_code == 200:
                found.append(answer.json()["person_id"])
            return bool(found)

        wait_until(resolved, WAIT_S, "the tenant's record to resolve")
        return found[0]

    def timeline(self, person_id: str, event_types: list[str]) -> list[dict[str, Any]]:
        """The person's timeline once it holds events of all these types (repeats counted)."""
        events: list[dict[str, Any]] = []

        def complete() -> bool:
            nonlocal events
            answer = self.api.get(f"/persons/{person_id}/timeline")
            events = answer.json()["events"] if answer.status_code == 200 else []
            held = [e["event_type"] for e in events]
            return all(held.count(kind) >= event_types.count(kind) for kind in event_types)

        wait_until(complete, WAIT_S, f"{event_types} on the person's timeline")
        return events


@pytest.fixture
def go_live(deployment: Deployment, postgres: str, tmp_path: Path) -> Iterator[GoLive]:
    """The agency data as it stands before go-live; yields the backbone started against it."""
    family, given, born = distinct_identity()
    national_id = f"QQ{uuid.uuid4().int % 1_000_000:06d}C"
    tenancy = Tenancy(
        "TEN-1", "PER-1", national_id, family, given, born, "12 Moor Road, Leeds", "LS6 2AB"
    ).changed(arrears_amount="500.00", arrears_weeks=5.0)
    housing = HousingManagementSystem(tmp_path / "drop")
    housing.export(LAST_NIGHT, [tenancy])
    logs = tmp_path / "logs"
    logs.mkdir()
    housing_env = {
        "BACKBONE_METRICS_PORT": str(free_port()),
        "BACKBONE_DATA_DIR": str(tmp_path / "housing-state"),
        "BACKBONE_HOUSING_DROP_DIR": str(housing.drop_dir),
        "BACKBONE_HOUSING_POLL_INTERVAL_S": "0.1",
    }
    with jobcentre_database(postgres, "golive") as (dsn, jobcentre):
        jobcentre.register(Jobseeker(1, family, given, born, national_id, "LS6 2AB"))
        jobcentre.impose_sanction(
            2, 1, "missed work search review", LAST_NIGHT, 100, imposed_at=NOW - timedelta(days=3)
        )
        cdc_env = {
            "BACKBONE_METRICS_PORT": str(free_port()),
            "BACKBONE_CDC_DSN": dsn,
            "BACKBONE_CDC_SLOT": f"t_{uuid.uuid4().hex[:12]}",
            "BACKBONE_CDC_IDLE_POLL_S": "0.05",
        }
        processes: list[BackboneProcess] = []
        consumer = Consumer(
            {"bootstrap.servers": deployment.bootstrap, "group.id": f"test-{uuid.uuid4().hex}"}
        )
        try:
            processes.append(deployment.start_worker(logs, ALERT_ENV))
            processes.append(deployment.start_connector("jobcentre-cdc", logs, cdc_env))
            processes.append(deployment.start_connector("housing-csv", logs, housing_env))
            for process in processes:
                process.wait_healthy()
            topic = Topics(deployment.prefix).alerts
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            codec = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
            with deployment.coordinator_api() as api:
                yield GoLive(housing, tenancy, api, AlertLog(consumer, codec))
        finally:
            # Before the database goes: its slot cannot be dropped while the connector runs.
            consumer.close()
            stop_all(processes)


def test_the_state_found_at_go_live_raises_no_alert_and_the_next_change_does(
    go_live: GoLive,
) -> None:
    person_id = go_live.person_id(go_live.tenancy.tenant_ref)
    found = go_live.timeline(
        person_id,
        [
            "jobseeker_registered",
            "sanction_imposed",
            "tenancy_started",
            "arrears_threshold_crossed",
        ],
    )
    # One person across both agencies, all of it the state found at go-live.
    assert all(entry.get("initial_load") is True for entry in found)
    [sanction] = [e["event_id"] for e in found if e["event_type"] == "sanction_imposed"]

    tonight = go_live.housing.export(
        TONIGHT, [go_live.tenancy.changed(arrears_amount="900.00", arrears_weeks=9.0)]
    )
    events = go_live.timeline(
        person_id, [*[e["event_type"] for e in found], "arrears_threshold_crossed"]
    )
    [crossed] = [e for e in events if e["event_id"] not in {f["event_id"] for f in found}]
    assert "initial_load" not in crossed, f"{tonight.name} is a change after go-live"
    step = go_live.alerts.wait_raised(person_id, "R3")

    # The only alert for the person is tonight's: the arrears found at go-live raised none (it
    # would have been raised first, on the alerts topic's one partition, and absorbed this one).
    assert go_live.alerts.raised_for(person_id) == [step]
    explained = {event["event_id"] for event in step["alert"]["events"]}
    assert explained == {sanction, crossed["event_id"]}
