"""The rule file: cross-agency alert rules as data (README, "Cross-agency alert rules").

A rule file is YAML, `rules: [...]`, validated once at start-up. Every problem is reported as
`<rule id> <field path>: <what is wrong>`, e.g. `R3 conditions[0].within.after: ...`, so the
author can find it without reading code. A rule has an anchor (`when`: the events the pattern
is measured around) and conditions over the person's or the household's timeline inside a
window around the anchor:

- `exists: MATCH` - at least one such event in the window;
- `absent: MATCH` - none; with a window after the anchor it is an absence that is only decided
  once the event-time watermark has passed the window's end;
- `at_least: N` with `of: MATCH` - N or more such events in the window;
- `open: {opened_by: MATCH, closed_by: MATCH, same: FIELD}` - a state holds at the anchor's
  time (opened and not yet closed, by events carrying the same FIELD value if given);
- `any_of: [CONDITION, ...]` - one of several conditions.

An anchor that came with a connector's initial load (the state an agency system already held
at go-live, README "Initial loads") raises no alert unless the rule says
`fire_on_initial_load: true`; such events still count in conditions.

A MATCH is `{types: [...], agencies: [...], where: {detail.path: FILTER}}` or just a list of
event types. A FILTER is a value, a list of allowed values, or `{at_least: x, at_most: y}`.
Durations are written `<n>m`, `<n>h`, `<n>d` or `<n>w`.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)

from backbone.contracts import EVENT_TYPES, Agency
from backbone.errors import ConfigurationError
from backbone.household import Relationship
from backbone.settings import REPO_ROOT

SHIPPED_RULES = REPO_ROOT / "deploy" / "rules" / "rules.yaml"
KNOWN_EVENT_TYPES = frozenset().union(*EVENT_TYPES.values())
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
# What an alert's text may say about the situation; filled in when the alert is raised.
TEXT_PLACEHOLDERS = frozenset(
    {
        "rule_id",
        "rule_name",
        "severity",
        "person_id",
        "household_person_ids",
        "anchor_type",
        "anchor_agency",
        "anchor_at",
        "anchor_date",
        "event_count",
    }
)
Scalar = str | int | float | bool


class Decide(StrEnum):
    """When a rule that holds fires: at once (and is withdrawn if a late event disproves it),
    or only once no event inside its allowed lateness can come any more."""

    AT_ONCE = "at_once"
    AFTER_LATENESS = "after_lateness"


class Severity(StrEnum):
    """How urgently a coordinator must look; also sets the escalation time."""

    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    URGENT = "urgent"


def parse_duration(value: Any) -> timedelta:
    """`90d`, `4h`, `30m`, `2w` as a timedelta; anything else is a clear error."""
    if isinstance(value, timedelta):
        return value
    found = DURATION.match(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"{value!r} is not a duration like 90d, 4h, 30m or 2w")
    return timedelta(**{DURATION_UNITS[found.group(2)]: int(found.group(1))})


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def format_duration(span: timedelta) -> str:
    """A duration as a rule file writes it (`90d`, `4h`, `30m`)."""
    minutes = int(span.total_seconds()) // 60
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def known_event_type(value: str) -> str:
    """An event type some agency actually emits (backbone.contracts.EVENT_TYPES)."""
    if value not in KNOWN_EVENT_TYPES:
        raise ValueError(f"{value!r} is not an event type of any agency")
    return value


EventType = Annotated[str, AfterValidator(known_event_type)]


@dataclass(frozen=True)
class Filter:
    """What one detail field must hold: one of `allowed` values, and/or within bounds."""

    allowed: tuple[Scalar, ...] | None = None
    at_least: float | None = None
    at_most: float | None = None

    def accepts(self, value: Any) -> bool:
        """True if `value` (a detail of an event) passes this filter."""
        if value is None or (self.allowed is not None and value not in self.allowed):
            return False
        if self.at_least is None and self.at_most is None:
            return True
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (self.at_least is None or value >= self.at_least) and (
            self.at_most is None or value <= self.at_most
        )

    def describe(self) -> str:
        """`=E`, ` in [a, b]`, `>=4`."""
        parts = []
        if self.allowed is not None:
            values = ", ".join(map(str, self.allowed))
            parts.append(f"={values}" if len(self.allowed) == 1 else f" in [{values}]")
        if self.at_least is not None:
            parts.append(f">={self.at_least:g}")
        if self.at_most is not None:
            parts.append(f"<={self.at_most:g}")
        return " and ".join(parts)


def parse_filter(value: Any) -> Filter:
    """A filter as written in YAML: a value, a list of values, or {at_least, at_most}."""
    if isinstance(value, Filter):
        return value
    if isinstance(value, Scalar):
        return Filter(allowed=(value,))
    if isinstance(value, list) and value and all(isinstance(item, Scalar) for item in value):
        return Filter(allowed=tuple(value))
    if isinstance(value, dict) and value and set(value) <= {"at_least", "at_most"}:
        if not all(isinstance(b, int | float) and not isinstance(b, bool) for b in value.values()):
            raise ValueError("at_least / at_most must be numbers")
        return Filter(at_least=value.get("at_least"), at_most=value.get("at_most"))
    raise ValueError(
        "a filter is a value, a non-empty list of values, or {at_least: x, at_most: y}"
    )


class RuleModel(BaseModel):
    """Strict and immutable: a misspelt key is an error, not a silently ignored setting."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class EventMatch(RuleModel):
    """Which events count: by type and/or agency, with filters on their details."""

    types: list[EventType] = Field(default_factory=list)
    agencies: list[Agency] = Field(default_factory=list)
    where: dict[str, Annotated[Filter, PlainValidator(parse_filter)]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _types_shorthand(cls, data: Any) -> Any:
        # `[discharge]` reads better in a rule than `{types: [discharge]}`.
        if isinstance(data, list | str):
            return {"types": [data] if isinstance(data, str) else data}
        return data

    @model_validator(mode="after")
    def _says_something(self) -> EventMatch:
        if not self.types and not self.agencies:
            raise ValueError("name the event types or the agencies that match")
        return self

    def describe(self) -> str:
        """One line for people: `attendance|admission where encounter.patient_class=E`."""
        what = "|".join([*self.types, *(f"any {agency.value} event" for agency in self.agencies)])
        checks = [f"{path}{check.describe()}" for path, check in self.where.items()]
        return f"{what} where {', '.join(checks)}" if checks else what

    def may_match(self, event_type: str, agency: str) -> bool:
        """True if an event of this type and agency matches, its details permitting."""
        return (not self.types or event_type in self.types) and (
            not self.agencies or agency in self.agencies
        )

    def matches(self, entry: dict[str, Any]) -> bool:
        """True if the timeline entry is one of these events."""
        if self.types and entry["event_type"] not in self.types:
            return False
        if self.agencies and entry["agency"] not in self.agencies:
            return False
        details = entry.get("details") or {}
        return all(check.accepts(detail(details, path)) for path, check in self.where.items())


def detail(details: dict[str, Any], path: str) -> Any:
    """The value at a dotted path in an entry's details (`encounter.patient_class`), or None."""
    value: Any = details
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class Window(RuleModel):
    """A span around the anchor: `before` it and `after` it, both ends included."""

    before: Duration = timedelta(0)
    after: Duration = timedelta(0)

    def describe(self) -> str:
        """`within 90d before`, `within 14d before and 14d after`."""
        sides = [
            f"{format_duration(span)} {side}"
            for side, span in (("before", self.before), ("after", self.after))
            if span
        ]
        return f"within {' and '.join(sides)}" if sides else "at the anchor's time"


class OpenState(RuleModel):
    """A state that holds from an opening event until a closing one (a case is open)."""

    opened_by: EventMatch
    closed_by: EventMatch
    same: str | None = Field(
        None, description="detail path both events must share, e.g. case_id", min_length=1
    )


CONDITION_KINDS = ("exists", "absent", "at_least", "open", "any_of")


class Condition(RuleModel):
    """One condition of a rule; exactly one of exists, absent, at_least, open, any_of."""

    exists: EventMatch | None = None
    absent: EventMatch | None = None
    at_least: int | None = Field(None, ge=1)
    of: EventMatch | None = None
    open: OpenState | None = None
    any_of: list[Condition] | None = Field(None, min_length=1)
    within: Window | None = Field(
        None, description="window around the anchor; omitted = any time up to the anchor"
    )
    scope: Literal["person", "household"] = "person"
    person_is: list[Relationship] | None = Field(
        None, description="household scope: only members who list the person in this role"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        given = [kind for kind in CONDITION_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(CONDITION_KINDS)}")
        if (self.at_least is None) != (self.of is None):
            raise ValueError("at_least and of go together")
        if self.within is not None and self.kind in ("open", "any_of"):
            raise ValueError(f"within: not allowed with {self.kind} (set it on the inner ones)")
        if self.kind == "any_of" and (self.scope != "person" or self.person_is):
            raise ValueError("scope: set it on the conditions inside any_of")
        if self.person_is and self.scope != "household":
            raise ValueError("person_is: only with scope household")
        return self

    @property
    def kind(self) -> str:
        """Which of the condition kinds this is."""
        return next(kind for kind in CONDITION_KINDS if getattr(self, kind) is not None)

    def describe(self) -> str:
        """The condition in one line, for `backbone rules check`."""
        if self.any_of is not None:
            return "any of (" + "; ".join(inner.describe() for inner in self.any_of) + ")"
        scope = ""
        if self.scope == "household":
            roles = f" whose {'/'.join(self.person_is)} the person is" if self.person_is else ""
            scope = f" in a household member{roles}"
        if self.open is not None:
            state = f"{self.open.opened_by.describe()} not yet {self.open.closed_by.describe()}"
            if self.open.same:
                state += f" (same {self.open.same})"
            return f"open: {state}{scope}"
        window = self.within.describe() if self.within else "any time before"
        match = self.exists or self.absent or self.of
        assert match is not None  # nosec B101 # one kind is set, checked on validation
        head = f"at least {self.at_least}" if self.at_least else self.kind
        return f"{head} {match.describe()}{scope}, {window}"

    def leaves(self) -> list[Condition]:
        """This condition, or the conditions inside any_of, flattened."""
        if self.any_of is None:
            return [self]
        return [leaf for inner in self.any_of for leaf in inner.leaves()]

    def matchers(self) -> list[EventMatch]:
        """The event matches this (leaf) condition looks for."""
        if self.open is not None:
            return [self.open.opened_by, self.open.closed_by]
        return [m for m in (self.exists, self.absent, self.of) if m is not None]


def placeholders_known(text: str) -> str:
    """The text may only use the placeholders an alert can fill in."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ValueError(f"not a valid template: {exc}") from exc
    unknown = sorted(set(fields) - TEXT_PLACEHOLDERS)
    if unknown:
        allowed = ", ".join(sorted(TEXT_PLACEHOLDERS))
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use {allowed}")
    return text


class Rule(RuleModel):
    """One alert rule: the anchor, the conditions, and who is told how urgently."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1)
    version: int = Field(ge=1)
    when: EventMatch
    conditions: list[Condition] = Field(default_factory=list)
    severity: Severity
    notify: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]] = Field(min_length=1)
    dedup: Duration
    allowed_lateness: Duration = timedelta(days=7)
    decide: Decide = Decide.AT_ONCE
    text: Annotated[str, AfterValidator(placeholders_known)] = Field(min_length=1)
    fire_on_initial_load: bool = Field(
        False,
        description="an anchor from a connector's initial load (the state found at go-live) "
        "raises the alert too; by default it does not, though it still counts in conditions",
    )

    def leaves(self) -> list[Condition]:
        """Every leaf condition, through any_of."""
        return [leaf for condition in self.conditions for leaf in condition.leaves()]

    def describe_when(self) -> str:
        """The anchor in one line, for `backbone rules check`."""
        when = self.when.describe()
        return f"{when} (initial loads too)" if self.fire_on_initial_load else when


class RuleSet(RuleModel):
    """The rules of one file, in file order, with unique ids."""

    rules: list[Rule]

    def by_id(self, rule_id: str) -> Rule:
        """The rule with this id (KeyError if none)."""
        return next(rule for rule in self.rules if rule.id == rule_id)


class RuleFileError(ConfigurationError):
    """A rule file that cannot be used; `problems` lists each as `<rule> <field>: <what>`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{source}: {problems[0]}{more}")
        self.source = source
        self.problems = problems


def field_path(location: tuple[int | str, ...]) -> str:
    """('conditions', 0, 'within') -> 'conditions[0].within'."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def _rule_problems(label: str, exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        where = field_path(tuple(error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{label} {where}: {message}" if where else f"{label}: {message}")
    return problems


def _validated(raw_rules: list[Any]) -> tuple[list[Rule], list[str]]:
    rules: list[Rule] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        label = raw_id if isinstance(raw_id, str) and raw_id else f"rules[{index}]"
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_rule_problems(label, exc))
            continue
        if rule.id in seen:
            problems.append(f"{label} id: used by an earlier rule too")
        seen.add(rule.id)
        rules.append(rule)
    return rules, problems


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate a rule file's text; RuleFileError names every rule and field that is wrong."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise RuleFileError(source, ["rules: the file must hold `rules:` with a list of rules"])
    # x- keys hold shared pieces that rules reference with YAML anchors.
    unknown = sorted(key for key in document if key != "rules" and not str(key).startswith("x-"))
    rules, problems = _validated(document["rules"])
    problems += [f"{key}: unknown top-level key" for key in unknown]
    if problems:
        raise RuleFileError(source, problems)
    return RuleSet(rules=rules)


def load_rules(path: Path = SHIPPED_RULES) -> RuleSet:
    """Read and validate a rule file (the shipped rules by default)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(str(path), [f"cannot read: {exc.strerror}"]) from exc
    return parse_rules(text, str(path))
