"""The housing CSV connector on real parts: real snapshot files in a drop folder, the connector
as a real process, the real Kafka broker.

Each test gets its own topics, drop folder and state, and writes exports with the housing
simulator the way the housing management system would.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from backbone.codec import AvroCodec, SchemaStore
from backbone.contracts import Agency
from backbone.errors import BadInput
from backbone.pseudonyms import Pseudonymiser
from backbone.settings import REPO_ROOT
from backbone.topics import Topics
from cli.kafka_probe import message_count, read_all
from cli.processes import BackboneProcess, free_port
from connectors.housing_csv.mapping import EVENT_ID_NAMESPACE
from connectors.housing_csv.snapshot_csv import parse_row, read_snapshot
from simulators.housing import HousingManagementSystem, population, tenancy
from tests.conftest import Deployment

NIGHT_1 = date(2026, 11, 1)
NIGHT_2 = date(2026, 11, 2)
CODEC = AvroCodec(SchemaStore(REPO_ROOT / "avro_schemas"))
Expected = tuple[str, str, str] | tuple[str, str, str, int]  # as_of, ref, type[, threshold]


@dataclass
class Housing:
    """One housing connector deployment: its drop folder, its process, its topics."""

    deployment: Deployment
    system: HousingManagementSystem
    logs: Path
    extra_env: dict[str, str]
    process: BackboneProcess | None = None

    @property
    def drop_dir(self) -> Path:
        return self.system.drop_dir

    @property
    def topic(self) -> str:
        return Topics(self.deployment.prefix).agency_events(Agency.HOUSING)

    @property
    def dead_letter_topic(self) -> str:
        return Topics(self.deployment.prefix).dead_letter

    def start(self) -> None:
        env = {
            **self.deployment.env(),
            "BACKBONE_HOUSING_DROP_DIR": str(self.drop_dir),
            "BACKBONE_HOUSING_POLL_INTERVAL_S": "0.1",
            **self.extra_env,
        }
        self.process = BackboneProcess.start(
            "housing-csv",
            ["connector", "run", "housing-csv"],
            env,
            self.logs,
            f"http://127.0.0.1:{self.deployment.connector_metrics_port}/health",
        )
        self.process.wait_healthy()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def wait_set_aside(
        self, name: str, subfolder: str = "processed", timeout_s: float = 60.0
    ) -> Path:
        """Wait until the connector moved `name` into `subfolder`; its new path."""
        target = self.drop_dir / subfolder / name
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if target.exists():
                return target
            assert self.process is not None and self.process.process.poll() is None, (
                f"the connector exited; see {self.process.log if self.process else '-'}"
            )
            time.sleep(0.05)
        raise AssertionError(f"{name} never reached {subfolder}/; see {self.logs}")

    def events(self) -> list[dict[str, Any]]:
        """Every housing event on the topic, decoded, with the Kafka key under `_key`."""
        if message_count(self.deployment.bootstrap, self.topic) == 0:
            return []
        return [
            {**CODEC.decode(r.value).record, "_key": r.key}
            for r in read_all(self.deployment.bootstrap, self.topic)
        ]

    def log_lines(self) -> list[dict[str, Any]]:
        """The connector's JSON log lines so far."""
        assert self.process is not None
        text = self.process.log.read_text()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def metrics(self) -> str:
        port = self.deployment.connector_metrics_port
        return httpx.get(f"http://127.0.0.1:{port}/metrics").text

    def pseudonyms(self) -> Pseudonymiser:
        return Pseudonymiser(self.deployment.pseudonym_key.encode())

    def expected_id(self, as_of: date, tenancy_ref: str, event_type: str, weeks: int = 0) -> str:
        """The event id the spec prescribes, computed here independently of the connector."""
        hashed = self.pseudonyms().record_id("housing", "tenancy_ref", tenancy_ref)
        name = f"housing:{as_of.isoformat()}:{hashed}:{event_type}"
        return str(uuid.uuid5(EVENT_ID_NAMESPACE, name + (f":{weeks}" if weeks else "")))


@pytest.fixture
def make_housing(deployment: Deployment, tmp_path: Path) -> Iterator[Any]:
    """Builds a housing connector deployment with its own topics; stops it afterwards."""
    made: list[Housing] = []

    def make(**extra_env: str) -> Housing:
        isolated = replace(
            deployment,
            prefix=f"{deployment.prefix}h{len(made)}{uuid.uuid4().hex[:6]}",
            data_dir=tmp_path / "state",
            connector_metrics_port=free_port(),
        )
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        housing = Housing(isolated, HousingManagementSystem(tmp_path / "drop"), logs, extra_env)
        made.append(housing)
        return housing

    yield make
    for housing in made:
        housing.stop()


@pytest.fixture
def housing(make_housing: Any) -> Housing:
    started: Housing = make_housing()
    started.start()
    return started


def ids_of(events: list[dict[str, Any]], snapshot_file: str | None = None) -> list[str]:
    return [
        e["envelope"]["event_id"]
        for e in events
        if snapshot_file is None or e["snapshot_file"] == snapshot_file
    ]


def test_the_first_snapshot_reports_every_tenancy_started(housing: Housing) -> None:
    tenancies = list(population(20, prefix="A"))
    tenancies[3] = tenancies[3].changed(
        family_name="  Ó  Súilleabháin ", national_id="qq 12 34 56 c", postcode="ls6 1aa"
    )
    tenancies[4] = tenancies[4].changed(status="ended")

    path = housing.system.export(NIGHT_1, tenancies)
    housing.wait_set_aside(path.name)

    events = housing.events()
    active = [t for t in tenancies if t.status == "active"]
    assert sorted(ids_of(events)) == sorted(
        housing.expected_id(NIGHT_1, t.tenancy_ref, "tenancy_started") for t in active
    )
    record = events[0]
    envelope = record["envelope"]
    assert envelope["event_type"] == "tenancy_started"
    assert envelope["agency"] == "housing"
    assert envelope["legal_basis"] == "public_task"
    assert envelope["sensitivity"] == "personal"
    assert envelope["subject"]["id_type"] == "tenant_ref"
    assert record["_key"] == envelope["subject"]["record_id"].encode()
    assert record["snapshot_file"] == "tenancies_20261101.csv"
    assert record["tenancy"]["as_of"] == NIGHT_1
    irish = next(
        e["envelope"]["subject"]
        for e in events
        if e["envelope"]["subject"]["record_id"]
        == housing.pseudonyms().record_id("housing", "tenant_ref", tenancies[3].tenant_ref)
    )
    assert irish["family_name"] == "o suilleabhain"
    assert irish["postcode"] == "LS61AA"
    assert irish["national_id"] == housing.pseudonyms().national_id("QQ123456C")
    raw = b"".join(r.value for r in read_all(housing.deployment.bootstrap, housing.topic))
    assert b"A-PER-" not in raw and b"A-TEN-" not in raw and b"QQ" not in raw
    # No snapshot before it at all: what the housing system held at go-live.
    assert all(e["envelope"]["initial_load"] for e in events)


def test_the_next_snapshot_emits_exactly_the_changes(housing: Housing) -> None:
    night1 = {t.tenancy_ref: t for t in population(12, prefix="B")}
    first = housing.system.export(NIGHT_1, night1.values())
    housing.wait_set_aside(first.name)
    refs = list(night1)
    changed = {
        refs[0]: night1[refs[0]].changed(arrears_amount="812.50", arrears_weeks=9.0),
        refs[1]: night1[refs[1]].changed(arrears_amount="400.00", arrears_weeks=4.0),
        refs[2]: night1[refs[2]].changed(notice="notice_seeking_possession"),
        refs[3]: night1[refs[3]].changed(notice="eviction_warrant"),
        refs[4]: night1[refs[4]].changed(homelessness_application="open"),
        refs[5]: night1[refs[5]].changed(homelessness_application="accepted"),
        refs[6]: night1[refs[6]].changed(homelessness_application="closed"),
        refs[7]: night1[refs[7]].changed(status="ended"),
        refs[8]: night1[refs[8]].changed(family_name="Nowak-Smith", address="9 New Street"),
        refs[9]: night1[refs[9]].changed(arrears_amount="30.00", arrears_weeks=3.5),
    }
    night2 = {**night1, **changed}
    del night2[refs[10]]  # gone from the export: the tenancy ended
    newcomer = tenancy(500, prefix="B")
    night2[newcomer.tenancy_ref] = newcomer

    second = housing.system.export(NIGHT_2, night2.values())
    housing.wait_set_aside(second.name)

    expected: list[tuple[str, str, int]] = [
        (refs[0], "arrears_threshold_crossed", 4),
        (refs[0], "arrears_threshold_crossed", 8),
        (refs[1], "arrears_threshold_crossed", 4),
        (refs[2], "notice_served", 0),
        (refs[3], "eviction_warrant_issued", 0),
        (refs[4], "homelessness_application_opened", 0),
        (refs[5], "homelessness_application_accepted", 0),
        (refs[6], "homelessness_application_closed", 0),
        (refs[7], "tenancy_ended", 0),
        (refs[8], "tenant_details_changed", 0),
        (refs[10], "tenancy_ended", 0),
        (newcomer.tenancy_ref, "tenancy_started", 0),
    ]
    events = housing.events()
    assert sorted(ids_of(events, second.name)) == sorted(
        housing.expected_id(NIGHT_2, ref, kind, weeks) for ref, kind, weeks in expected
    )
    by_id = {e["envelope"]["event_id"]: e for e in events}
    arrears = by_id[housing.expected_id(NIGHT_2, refs[0], "arrears_threshold_crossed", 8)]
    assert arrears["arrears_threshold_weeks"] == 8
    assert arrears["tenancy"]["arrears_pence"] == 81250
    assert arrears["tenancy"]["arrears_weeks"] == 9.0
    gone = by_id[housing.expected_id(NIGHT_2, refs[10], "tenancy_ended")]
    assert gone["tenancy"]["status"] == "ended"
    assert gone["tenancy"]["as_of"] == NIGHT_2
    # Only the first night is the initial load; the newcomer is a real new tenancy.
    assert {(e["snapshot_file"], e["envelope"]["initial_load"]) for e in events} == {
        (first.name, True),
        (second.name, False),
    }


def test_the_same_file_twice_emits_nothing(housing: Housing) -> None:
    first = housing.system.export(NIGHT_1, population(15, prefix="C"))
    processed = housing.wait_set_aside(first.name)
    before = message_count(housing.deployment.bootstrap, housing.topic)
    assert before == 15

    shutil.copy(processed, first)
    housing.wait_set_aside(first.name + ".1")

    assert message_count(housing.deployment.bootstrap, housing.topic) == before
    assert (
        'backbone_housing_snapshots_total{component="housing-csv",outcome="already_processed"} 1.0'
        in housing.metrics()
    )


def test_a_file_not_newer_than_the_last_one_is_refused(housing: Housing) -> None:
    tenancies = list(population(10, prefix="D"))
    second = housing.system.export(NIGHT_2, tenancies)
    housing.wait_set_aside(second.name)
    before = message_count(housing.deployment.bootstrap, housing.topic)

    older = housing.system.export(NIGHT_1, [t.changed(arrears_weeks=10.0) for t in tenancies])
    housing.wait_set_aside(older.name, "refused")
    same_night = housing.system.export(
        NIGHT_2, [t.changed(notice="notice_to_quit") for t in tenancies]
    )
    housing.wait_set_aside(same_night.name, "refused")

    assert message_count(housing.deployment.bootstrap, housing.topic) == before
    assert (
        'backbone_housing_snapshots_total{component="housing-csv",outcome="refused"} 2.0'
        in housing.metrics()
    )
    refusals = [line for line in housing.log_lines() if line.get("event") == "snapshot_refused"]
    assert [(r["file"], r["last_processed"]) for r in refusals] == [
        (older.name, second.name),
        (same_night.name, second.name),
    ]
    assert all(r["reason"] == "not newer than the last snapshot processed" for r in refusals)


def test_a_file_with_a_wrong_header_is_refused_and_dead_lettered(housing: Housing) -> None:
    path = housing.drop_dir / HousingManagementSystem.file_name(NIGHT_1)
    partial = path.with_name(".partial")
    partial.write_text("as_of,tenancy_ref,surname\n2026-11-01,X-1,Doe\n", encoding="utf-8")
    partial.rename(path)

    housing.wait_set_aside(path.name, "refused")

    assert message_count(housing.deployment.bootstrap, housing.topic) == 0
    [letter] = read_all(housing.deployment.bootstrap, housing.dead_letter_topic)
    assert letter.value == b"as_of,tenancy_ref,surname"
    assert letter.headers["reason"].startswith(b"header: columns are as_of, tenancy_ref, surname")
    assert letter.headers["source"] == b"tenancies_20261101.csv:1"


def test_malformed_rows_are_dead_lettered_and_the_rest_goes_through(housing: Housing) -> None:
    good = list(population(6, prefix="E"))
    template = good[0].row(NIGHT_1)

    def line(fields: list[str]) -> str:
        return ",".join(f'"{field}"' for field in fields)

    def bad(column: int, value: str) -> str:
        row = list(template)
        row[1] = f"E-BAD-{column}"
        row[column] = value
        return line(row)

    malformed = {
        "row: has 14 columns, expected 15": line(template[:14]),
        "birth_date: '1990-02-31' is not a date (YYYY-MM-DD)": bad(6, "1990-02-31"),
        "arrears_amount: 'twelve' is not an amount in pounds": bad(10, "twelve"),
        "arrears_weeks: 'x' is not a number of weeks": bad(11, "x"),
        "tenancy_status: 'paused' is not one of active, ended": bad(9, "paused"),
        "household_size: '2.5' is not a whole number": bad(14, "2.5"),
        "tenancy_ref: appears more than once in the snapshot": line(good[1].row(NIGHT_1)),
    }
    *broken, duplicate = malformed.values()
    rows: list[list[str] | str] = [good[0].row(NIGHT_1), *broken]
    rows += [t.row(NIGHT_1) for t in good[1:]]
    rows.append(duplicate)  # the second row of a tenancy is the one refused

    path = housing.system.export_rows(NIGHT_1, rows)
    housing.wait_set_aside(path.name)

    assert sorted(ids_of(housing.events())) == sorted(
        housing.expected_id(NIGHT_1, t.tenancy_ref, "tenancy_started") for t in good
    )
    letters = read_all(housing.deployment.bootstrap, housing.dead_letter_topic)
    reasons = {letter.headers["reason"].decode(): letter for letter in letters}
    assert set(reasons) == set(malformed)
    for reason, raw in malformed.items():
        assert reasons[reason].value == raw.encode()
        assert reasons[reason].headers["connector"] == b"housing-csv"
    line_of_first_bad = reasons["row: has 14 columns, expected 15"].headers["source"]
    assert line_of_first_bad == b"tenancies_20261101.csv:3"
    assert 'backbone_dead_letters_total{component="housing-csv",reason="birth_date"} 1.0' in (
        housing.metrics()
    )


def test_hostile_rows_are_dead_lettered_and_the_file_is_still_processed(
    make_housing: Any,
) -> None:
    housing: Housing = make_housing(BACKBONE_HOUSING_MAX_ROW_CHARS="2048")
    housing.start()
    good = list(population(6, prefix="K"))

    def bad(number: int, column: int, value: str) -> list[str]:
        row = tenancy(100 + number, prefix="K").row(NIGHT_1)
        row[column] = value
        return row

    unclosed = ",".join(tenancy(200, prefix="K").row(NIGHT_1)).replace(",K-TEN", ',"K-TEN', 1)
    overlong = bad(4, 7, "x" * 5000)
    rows: list[list[str] | str] = [
        good[0].row(NIGHT_1),
        unclosed,  # made every row after it part of one field
        good[1].row(NIGHT_1),
        bad(1, 10, "1e999999999"),  # decimal.Overflow: the file was deferred again and again
        good[2].row(NIGHT_1),
        bad(2, 10, "sNaN"),  # decimal.InvalidOperation, likewise
        bad(3, 14, "99999999999"),  # over Avro's int: written as it was
        good[3].row(NIGHT_1),
        overlong,
        *(t.row(NIGHT_1) for t in good[4:]),
    ]

    path = housing.system.export_rows(NIGHT_1, rows)
    housing.wait_set_aside(path.name)

    assert sorted(ids_of(housing.events())) == sorted(
        housing.expected_id(NIGHT_1, t.tenancy_ref, "tenancy_started") for t in good
    )
    letters = read_all(housing.deployment.bootstrap, housing.dead_letter_topic)
    reasons = {letter.headers["source"].decode(): letter for letter in letters}
    assert {source: r.headers["reason"].decode()[:40] for source, r in reasons.items()} == {
        "tenancies_20261101.csv:3": "row: a quote on this line is not closed ",
        "tenancies_20261101.csv:5": "arrears_amount: '1e999999999' is not an ",
        "tenancies_20261101.csv:7": "arrears_amount: 'sNaN' is not an amount ",
        "tenancies_20261101.csv:8": "household_size: Input should be less tha",
        "tenancies_20261101.csv:10": "row: is longer than 2048 characters",
    }
    assert reasons["tenancies_20261101.csv:3"].value == unclosed.encode()
    # Of a row over the limit, its first characters are kept.
    assert reasons["tenancies_20261101.csv:10"].value.decode() == ",".join(overlong)[:2049]


def test_a_connector_killed_mid_file_publishes_exactly_the_expected_ids_after_restart(
    make_housing: Any,
) -> None:
    housing: Housing = make_housing(BACKBONE_HOUSING_PUBLISH_WINDOW="50")
    housing.start()
    tenancies = list(population(20_000, prefix="F"))
    path = housing.system.export(NIGHT_1, tenancies)
    bootstrap = housing.deployment.bootstrap
    deadline = time.monotonic() + 60
    while message_count(bootstrap, housing.topic) < 500:
        assert time.monotonic() < deadline, "the connector never started publishing"
        time.sleep(0.02)
    assert housing.process is not None
    housing.process.process.send_signal(signal.SIGKILL)
    housing.process.process.wait()
    published_before_restart = message_count(bootstrap, housing.topic)
    assert path.exists(), "the file was finished before the kill; the test proves nothing"
    assert published_before_restart < len(tenancies)

    housing.start()
    housing.wait_set_aside(path.name, timeout_s=90)

    ids = ids_of(housing.events())
    assert set(ids) == {
        housing.expected_id(NIGHT_1, t.tenancy_ref, "tenancy_started") for t in tenancies
    }
    assert len(ids) >= len(tenancies)
    assert max(Counter(ids).values()) <= 2
    # Read again from the start, the first file is still the initial load, before and after.
    assert all(e["envelope"]["initial_load"] for e in housing.events())


def test_with_markers_only_marked_files_are_taken_and_temporary_names_never(
    make_housing: Any,
) -> None:
    housing: Housing = make_housing(BACKBONE_HOUSING_REQUIRE_DONE_MARKER="true")
    housing.start()
    temporary = housing.drop_dir / ".tenancies_20261103.csv.partial"
    temporary.write_text("half a file")
    # Under its final name but without its marker yet: not to be taken.
    unmarked = housing.system.export(NIGHT_2, population(3, prefix="G"))
    marked = housing.system.export(NIGHT_1, population(4, prefix="G"), marker=True)

    housing.wait_set_aside(marked.name)
    # NIGHT_2 was in the folder during the same look that took NIGHT_1, without its marker.
    assert unmarked.exists()
    assert message_count(housing.deployment.bootstrap, housing.topic) == 4

    unmarked.with_name(unmarked.name + ".done").touch()
    housing.wait_set_aside(unmarked.name)
    assert (housing.drop_dir / "processed" / (unmarked.name + ".done")).exists()
    assert temporary.exists()
    assert message_count(housing.deployment.bootstrap, housing.topic) == 4 + 1  # G-3 ended


def test_a_row_that_is_not_utf8_is_named_and_kept_byte_for_byte(tmp_path: Path) -> None:
    system = HousingManagementSystem(tmp_path)
    good = tenancy(1, prefix="H").row(NIGHT_1)
    path = system.export_rows(NIGHT_1, [good])
    bad_line = b"2026-11-01,H-TEN-2,H-PER-2,,M\xfcller,Anna,1980-01-01,x,,active,0,0,none,none,1"
    with path.open("ab") as out:
        out.write(bad_line + b"\n")

    rows = list(read_snapshot(path))

    assert parse_row(rows[0].fields).family_name == good[4]
    with pytest.raises(BadInput) as problem:
        parse_row(rows[1].fields)
    assert problem.value.field == "family_name"
    assert problem.value.reason == "is not valid UTF-8"
    assert rows[1].line == 3
    assert rows[1].raw.rstrip("\n").encode("utf-8", "surrogateescape") == bad_line
