"""Who hears about an alert: teams and their channels, from a YAML routing file.

The file maps each team named in a rule's `notify` to its channels:

    teams:
      housing-officers:
        - webhook: {url: https://hooks.example.org/housing, secret_env: BACKBONE_HOOK_HOUSING}
        - email: {to: housing-officers@example.org}

An optional `escalation` section has the same shape: each team's escalation contact, who
hears of an open alert nobody acknowledged in time (alert-rules.md):

    escalation:
      housing-officers:
        - email: {to: housing-duty-manager@example.org}

It is validated once at start-up, secrets included (a webhook's `secret_env` names the
environment variable holding its secret, or `<secret_env>_FILE` a file holding it: see
backbone/secret_settings.py), and every problem reads `team <name> <field path>: <what is
wrong>`.
A recipient is one channel address; two teams that share an address share one recipient, so
an alert routed to both reaches it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    model_validator,
)

from backbone.errors import ConfigurationError
from backbone.secret_settings import read_secret
from backbone.settings import REPO_ROOT

SAMPLE_ROUTING = REPO_ROOT / "deploy" / "notifications" / "routing.yaml"
ChannelKind = Literal["webhook", "email"]


class RoutingFileError(ConfigurationError):
    """A routing file that cannot be used; lists every problem, each naming team and field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"routing file {source}: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Recipient:
    """One place an alert is delivered to: a webhook URL or an email address."""

    kind: ChannelKind
    address: str
    # Only webhooks have one; excluded from equality so a recipient is its address.
    secret: SecretStr | None = field(default=None, compare=False, repr=False)

    @property
    def identity(self) -> str:
        """Stable name of the recipient, part of its delivery keys."""
        return f"{self.kind}:{self.address}"


class _Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl = Field(description="Where the signed JSON is POSTed")
    secret_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$", description="Environment variable holding the HMAC secret"
    )


class _Email(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    to: str = Field(
        pattern=r"^[^@\s<>]+@[^@\s<>]+$", description="Mailbox of the team (one address)"
    )


class _Channel(BaseModel):
    """Exactly one of `webhook` or `email`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: _Webhook | None = None
    email: _Email | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _Channel:
        if (self.webhook is None) == (self.email is None):
            raise ValueError("a channel is either `webhook: {url, secret_env}` or `email: {to}`")
        return self


class _Team(BaseModel):
    model_config = ConfigDict(frozen=True)

    channels: list[_Channel] = Field(min_length=1)


@dataclass(frozen=True)
class Routing:
    """The validated routing: each team's recipients."""

    teams: Mapping[str, tuple[Recipient, ...]]
    escalation: Mapping[str, tuple[Recipient, ...]] = field(default_factory=dict)

    def escalation_contacts(self, teams: Iterable[str]) -> tuple[Recipient, ...]:
        """The escalation contacts of the given teams, once each, in routing order."""
        return Routing(self.escalation).recipients_for(teams)

    def recipients_for(self, teams: Iterable[str]) -> tuple[Recipient, ...]:
        """Every recipient of the given teams, once each, in routing order."""
        seen: dict[Recipient, None] = {}
        for team in teams:
            for recipient in self.teams.get(team, ()):
                seen.setdefault(recipient, None)
        return tuple(seen)

    def unrouted(self, teams: Iterable[str]) -> list[str]:
        """The teams (e.g. of every rule's `notify`) that have no route here."""
        return sorted({team for team in teams if team not in self.teams})

    def require(self, teams: Iterable[str]) -> None:
        """Fail at start-up when a team a rule notifies has no route."""
        missing = self.unrouted(teams)
        if missing:
            raise RoutingFileError(
                "(rules)",
                [
                    f"team {team}: notified by a rule but not in the routing file"
                    for team in missing
                ],
            )


def load_routing(path: Path, environ: Mapping[str, str]) -> Routing:
    """Read and validate a routing file; `environ` supplies the webhook secrets."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutingFileError(str(path), [f"cannot read: {exc.strerror}"]) from exc
    return parse_routing(text, environ, str(path))


def parse_routing(text: str, environ: Mapping[str, str], source: str = "<text>") -> Routing:
    """Validate routing YAML; raises RoutingFileError listing every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoutingFileError(source, [f"not YAML: {exc}"]) from exc
    if not isinstance(document, dict) or not isinstance(document.get("teams"), dict):
        raise RoutingFileError(source, ["teams: must be a mapping of team name to channels"])
    escalation = document.get("escalation", {})
    if not isinstance(escalation, dict):
        raise RoutingFileError(source, ["escalation: must be a mapping of team name to channels"])
    teams, problems = _teams(document["teams"], environ)
    contacts, contact_problems = _teams(escalation, environ, "escalation of team")
    problems += contact_problems
    problems += _conflicting_secrets(
        {**teams, **{f"{n} (escalation)": r for n, r in contacts.items()}}
    )
    if problems:
        raise RoutingFileError(source, problems)
    return Routing(teams=teams, escalation=contacts)


def _teams(
    section: dict[Any, Any], environ: Mapping[str, str], label: str = "team"
) -> tuple[dict[str, tuple[Recipient, ...]], list[str]]:
    teams: dict[str, tuple[Recipient, ...]] = {}
    problems: list[str] = []
    for name, channels in section.items():
        recipients, team_problems = _team(str(name), channels, environ)
        teams[str(name)] = recipients
        problems.extend(p.replace("team ", f"{label} ", 1) for p in team_problems)
    return teams, problems


def _team(
    name: str, channels: Any, environ: Mapping[str, str]
) -> tuple[tuple[Recipient, ...], list[str]]:
    try:
        team = _Team(channels=channels)
    except ValidationError as exc:
        return (), [_problem(name, error["loc"], str(error["msg"])) for error in exc.errors()]
    recipients: list[Recipient] = []
    problems: list[str] = []
    for index, channel in enumerate(team.channels):
        if channel.email is not None:
            recipients.append(Recipient("email", channel.email.to))
        elif channel.webhook is not None:
            try:
                secret = _webhook_secret(environ, channel.webhook.secret_env)
            except ConfigurationError as exc:
                where = ("channels", index, "webhook", "secret_env")
                problems.append(_problem(name, where, str(exc)))
                continue
            recipients.append(Recipient("webhook", str(channel.webhook.url), secret))
    return tuple(recipients), problems


def _webhook_secret(environ: Mapping[str, str], variable: str) -> SecretStr:
    """The secret a webhook is signed with: in `variable`, or in the file `<variable>_FILE`."""
    secret = read_secret(environ, variable)
    if secret is None:
        raise ConfigurationError(f"{variable} is not set (nor {variable}_FILE)")
    return SecretStr(secret)


def _conflicting_secrets(teams: Mapping[str, tuple[Recipient, ...]]) -> list[str]:
    """A URL is one recipient, so every team that routes to it must sign with one secret."""
    first: dict[str, tuple[str, SecretStr | None]] = {}
    problems: list[str] = []
    for name, recipients in teams.items():
        for recipient in recipients:
            if recipient.kind != "webhook":
                continue
            owner, secret = first.setdefault(recipient.address, (name, recipient.secret))
            if secret != recipient.secret:
                problems.append(
                    f"team {name} webhook.secret_env: {recipient.address} is signed with "
                    f"another secret by team {owner}"
                )
    return problems


def _problem(team: str, location: tuple[int | str, ...], message: str) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    message = message.removeprefix("Value error, ")
    return f"team {team} {path}: {message}"
