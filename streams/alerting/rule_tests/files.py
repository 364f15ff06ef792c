"""Rule test files: events given in arrival order and the alerts expected (README, "Rule tests").

A test file is YAML:

    rule_files: [../rules.yaml]   # relative to the test file; their rules are tested together
    lateness: 1d                  # the worker's BACKBONE_ALERT_LATENESS_S (default 1d)
    tests:
      - name: discharged while a homelessness application is open
        given:                    # in arrival order
          - {id: opened, person: p1, type: homelessness_application_opened,
             occurred_at: 2026-03-05T09:00:00Z, details: {tenancy: {tenancy_ref: T1}}}
          - {id: out, person: p1, type: discharge, occurred_at: 2026-03-06T10:00:00Z}
          - {clock: 2026-04-01T00:00:00Z}   # the worker's timer, at this wall-clock time
        expect:
          - {rule: R1, person: p1, state: open, events: [opened, out]}
          - {rule: R5, none: true}

A given event has `person`, `type`, `occurred_at` (RFC 3339, with its offset) and optionally
`id` (default `given-<index>`), `agency` (default: the agency that emits the type), `details`
(the event's fields as the timeline keeps them: `tenancy`, `encounter`, `case_id`, ...) and
`household` (`{member: relationship}`: what each member is to this event's person, as identity
attaches it; a child's event lists its mother as `{mum: parent}`) and `initial_load: true`
(it came with a connector's initial load: the state found at go-live). An id may be given
again only for an exact repeat (a redelivery). An expected alert names `rule`, `person`, `state`
(`open` or `withdrawn`) and every event id of its explanation, absorbed ones included;
`{rule, person, none: true}` expects no alert of the rule for the person (any person if
`person` is left out).

Every problem is reported as `<test> <field path>: <what is wrong>`, e.g.
`test 'late notice' given[2].occurred_at: ...`, the way rule files report theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from backbone.contracts import EVENT_TYPES, Agency, LegalBasis, Sensitivity
from backbone.household import Relationship
from streams.alerting.rules import (
    Duration,
    EventType,
    Rule,
    RuleFileError,
    RuleSet,
    field_path,
    load_rules,
)
from streams.alerting.tracking import compact_entry
from streams.alerting.view import Entry
from streams.settings import AlertSettings

DEFAULT_LATENESS = timedelta(seconds=AlertSettings.model_fields["alert_lateness_s"].default)
EMITTED_BY = {etype: agency for agency, types in EVENT_TYPES.items() for etype in types}
# What the timeline takes out of an event's fields; in `details` they would vanish unseen.
NOT_DETAILS = ("envelope", "household")
PersonId = Annotated[str, Field(min_length=1)]


class RuleTestFileError(RuleFileError):
    """A rule test file that cannot be used; `problems` lists each as `<test> <field>: <what>`."""


class SpecModel(BaseModel):
    """Strict and immutable, as the rule file's models: a misspelt key is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class GivenEvent(SpecModel):
    """An event arriving on person-events, as a test writes it."""

    id: str | None = Field(None, min_length=1)
    person: PersonId
    type: EventType
    agency: Agency | None = None
    occurred_at: AwareDatetime
    details: dict[str, Any] = Field(default_factory=dict)
    household: dict[PersonId, Relationship] = Field(default_factory=dict)
    initial_load: bool = False

    @field_validator("agency")
    @classmethod
    def _emits_the_type(cls, agency: Agency | None, info: ValidationInfo) -> Agency | None:
        etype = info.data.get("type")
        if agency is not None and etype is not None and EMITTED_BY[etype] is not agency:
            raise ValueError(
                f"{agency.value} does not emit {etype} ({EMITTED_BY[etype].value} does)"
            )
        return agency

    @field_validator("details")
    @classmethod
    def _only_details(cls, details: dict[str, Any]) -> dict[str, Any]:
        for key in NOT_DETAILS:
            if key in details:
                raise ValueError(f"{key}: the test's own fields make it, not details")
        return details


class ClockStep(SpecModel):
    """The worker's timer at a wall-clock time: event time follows the wall clock."""

    clock: AwareDatetime


def _given_kind(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    return "clock" if "clock" in item else "event"


Given = Annotated[
    Annotated[GivenEvent, Tag("event")] | Annotated[ClockStep, Tag("clock")],
    Discriminator(
        _given_kind,
        custom_error_type="given_item",
        custom_error_message="an event {person, type, occurred_at, ...} or {clock: time}",
    ),
]


class Expected(SpecModel):
    """An alert the test expects, or (`none: true`) that no alert of the rule is raised."""

    rule: str = Field(min_length=1)
    person: PersonId | None = None
    state: Literal["open", "withdrawn"] | None = None
    events: list[str] | None = Field(None, min_length=1)
    none: Literal[True] | None = None

    @model_validator(mode="after")
    def _an_alert_or_none(self) -> Expected:
        if self.none and (self.state is not None or self.events is not None):
            raise ValueError("none: true takes only rule and person, no state or events")
        if not self.none and (self.person is None or self.state is None or self.events is None):
            raise ValueError("an expected alert needs person, state and events (or none: true)")
        return self

    def describe(self) -> str:
        """`R1 person=p1 open events=[a, b]`, or `no R5 alert for p1`."""
        if self.none:
            return f"no {self.rule} alert" + (f" for {self.person}" if self.person else "")
        return (
            f"{self.rule} person={self.person} {self.state} events=[{', '.join(self.events or [])}]"
        )


class WrittenTest(SpecModel):
    """One test as written: a name, the given events and timer ticks, the expected alerts."""

    name: str = Field(min_length=1)
    given: list[Given] = Field(min_length=1)
    expect: list[Expected]


class WrittenFile(SpecModel):
    """A test file as written; each test is validated on its own, so all are reported."""

    rule_files: list[str] = Field(min_length=1)
    lateness: Duration = DEFAULT_LATENESS
    tests: list[Any] = Field(min_length=1)


@dataclass(frozen=True)
class Arrival:
    """A given event as the alert processor takes it from person-events."""

    person_id: str
    entry: Entry
    household: dict[str, str]


@dataclass(frozen=True)
class Tick:
    """The worker's timer, run when the wall clock shows `at`."""

    at: datetime


@dataclass(frozen=True)
class RuleTest:
    """One test, ready to run."""

    name: str
    given: tuple[Arrival | Tick, ...]
    expect: tuple[Expected, ...]


@dataclass(frozen=True)
class RuleTestFile:
    """A test file, ready to run: its rules, the watermark's lateness and its tests."""

    path: Path
    rules: RuleSet
    lateness: timedelta
    tests: tuple[RuleTest, ...]


def load_test_file(path: Path) -> RuleTestFile:
    """Read and validate a test file and the rule files it names; RuleTestFileError names every
    test and field that is wrong."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleTestFileError(str(path), [f"cannot read: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise RuleTestFileError(str(path), [f"not valid YAML: {exc}"]) from exc
    if not isinstance(document, dict):
        raise RuleTestFileError(str(path), ["the file must hold rule_files and tests"])
    try:
        spec = WrittenFile.model_validate(document)
    except ValidationError as exc:
        raise RuleTestFileError(str(path), _problems("", exc)) from exc
    rules, problems = _rules(path, spec.rule_files)
    tests = []
    names: set[str] = set()
    for index, raw in enumerate(spec.tests):
        test, found = _test(index, raw, rules, names)
        problems += found
        if test is not None:
            tests.append(test)
    if problems:
        raise RuleTestFileError(str(path), problems)
    return RuleTestFile(path, rules, spec.lateness, tuple(tests))


def tests_naming(rule_file: Path) -> list[Path]:
    """The test files in `<rule file's directory>/tests/` whose `rule_files` name this rule
    file; a file there that does not say which rule files it tests is listed too, so that
    loading it reports what is wrong."""
    folder = rule_file.parent / "tests"
    wanted = rule_file.resolve()
    candidates = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    return [path for path in candidates if _names(path, wanted) is not False]


def _names(path: Path, rule_file: Path) -> bool | None:
    """Whether a test file names the rule file; None if it does not say which it tests."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    named = document.get("rule_files") if isinstance(document, dict) else None
    if not isinstance(named, list) or not all(isinstance(name, str) for name in named):
        return None
    return rule_file in {(path.parent / name).resolve() for name in named}


def _rules(path: Path, rule_files: list[str]) -> tuple[RuleSet, list[str]]:
    """The rules of every named file together, and the problems of any that cannot be used."""
    rules: dict[str, tuple[int, Rule]] = {}
    problems = []
    for index, name in enumerate(rule_files):
        try:
            loaded = load_rules(path.parent / name)
        except RuleFileError as exc:
            problems += [f"rule_files[{index}]: {exc.source}: {p}" for p in exc.problems]
            continue
        for rule in loaded.rules:
            if rule.id in rules:
                earlier = rules[rule.id][0]
                problems.append(
                    f"rule_files[{index}]: rule {rule.id} is in rule_files[{earlier}] too"
                )
            rules.setdefault(rule.id, (index, rule))
    return RuleSet(rules=[rule for _, rule in rules.values()]), problems


def _test(
    index: int, raw: Any, rules: RuleSet, names: set[str]
) -> tuple[RuleTest | None, list[str]]:
    raw_name = raw.get("name") if isinstance(raw, dict) else None
    label = f"test {raw_name!r}" if isinstance(raw_name, str) and raw_name else f"tests[{index}]"
    try:
        spec = WrittenTest.model_validate(raw)
    except ValidationError as exc:
        return None, _problems(label, exc)
    found = ["name: used by an earlier test too"] if spec.name in names else []
    names.add(spec.name)
    found += _given_problems(spec.given) + _expect_problems(spec, rules)
    if found:
        return None, [f"{label} {problem}" for problem in found]
    given = tuple(_step(position, item) for position, item in enumerate(spec.given))
    return RuleTest(spec.name, given, tuple(spec.expect)), []


def _given_problems(given: list[GivenEvent | ClockStep]) -> list[str]:
    problems = []
    seen: dict[str, tuple[int, GivenEvent]] = {}
    clock = None
    for position, item in enumerate(given):
        if isinstance(item, ClockStep):
            if clock is not None and item.clock < clock:
                problems.append(f"given[{position}].clock: goes back from {clock.isoformat()}")
            clock = item.clock
            continue
        event_id = _event_id(position, item)
        earlier = seen.setdefault(event_id, (position, item))
        if earlier[1] != item:
            problems.append(
                f"given[{position}].id: {event_id!r} is the id of given[{earlier[0]}] too, a "
                "different event (only an exact repeat may share it)"
            )
    return problems


def _expect_problems(spec: WrittenTest, rules: RuleSet) -> list[str]:
    events = {
        _event_id(position, item): item
        for position, item in enumerate(spec.given)
        if isinstance(item, GivenEvent)
    }
    persons = {item.person for item in events.values()}
    rule_ids = {rule.id for rule in rules.rules}
    problems = []
    for position, expected in enumerate(spec.expect):
        where = f"expect[{position}]"
        if expected.rule not in rule_ids:
            problems.append(f"{where}.rule: no rule {expected.rule} in the rule files")
        if expected.person is not None and expected.person not in persons:
            problems.append(f"{where}.person: {expected.person!r} is no given event's person")
        for at, event_id in enumerate(expected.events or []):
            if event_id not in events:
                problems.append(f"{where}.events[{at}]: no given event has the id {event_id!r}")
    return problems


def _event_id(position: int, event: GivenEvent) -> str:
    return event.id or f"given-{position}"


def _step(position: int, item: GivenEvent | ClockStep) -> Arrival | Tick:
    if isinstance(item, ClockStep):
        return Tick(item.clock)
    agency = item.agency or EMITTED_BY[item.type]
    # Through compact_entry, so the entry has the very shape the worker's alert views keep.
    record = {
        "envelope": {
            "event_id": _event_id(position, item),
            "subject": {"record_id": item.person},
            "event_type": item.type,
            "agency": agency.value,
            "occurred_at": item.occurred_at,
            "recorded_at": item.occurred_at,
            "legal_basis": LegalBasis.PUBLIC_TASK.value,
            "sensitivity": Sensitivity.PERSONAL.value,
            "initial_load": item.initial_load,
        },
        **item.details,
    }
    return Arrival(item.person, compact_entry(record), dict(item.household))


def _problems(label: str, exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        where = field_path(_without_kinds(tuple(error["loc"])))
        message = str(error["msg"]).removeprefix("Value error, ")
        head = " ".join(part for part in (label, where) if part)
        problems.append(f"{head}: {message}" if head else message)
    return problems


def _without_kinds(location: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A location without the given item's kind (`event` or `clock`), which pydantic puts after
    the item's index and the file does not have."""
    return tuple(
        part
        for at, part in enumerate(location)
        if not (at >= 2 and location[at - 2] == "given" and isinstance(location[at - 1], int))
    )
