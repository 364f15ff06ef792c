"""`backbone`: the one command line of agency-backbone (README, "Command line")."""

from __future__ import annotations

import subprocess  # nosec B404 # every call is a fixed command, checked under B603
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from backbone.errors import BackboneError
from backbone.settings import REPO_ROOT

if TYPE_CHECKING:
    from streams.alerting.rule_tests import Verdict

KAFKA_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"
POSTGRES_SCRIPT = REPO_ROOT / "deploy" / "postgres" / "postgres.sh"
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML file with settings (keys as the BACKBONE_* variables, lower case, no prefix)",
)


def fail(message: str) -> NoReturn:
    click.echo(f"backbone: {message}", err=True)
    sys.exit(2)


class BackboneGroup(click.Group):
    """Turns the backbone's own errors into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BackboneError as exc:
            fail(str(exc))


@click.group(cls=BackboneGroup)
def main() -> None:
    """agency-backbone: joins up health, jobcentre, housing and social care events."""


def _service_group(name: str, script: Path, about: str, start_help: str) -> click.Group:
    """`backbone NAME start / stop / status`, run by the service's script under deploy/."""
    group = click.Group(name, help=about)
    for action, help_text in (
        ("start", start_help),
        ("stop", "Stop it cleanly."),
        ("status", "Exit 0 if it runs."),
    ):

        def run(action: str = action) -> None:
            sys.exit(subprocess.call([str(script), action]))  # nosec B603 # the project's own script, fixed arguments, no shell

        group.add_command(click.Command(action, callback=run, help=help_text))
    return group


main.add_command(
    _service_group(
        "broker",
        KAFKA_SCRIPT,
        "The project's own local Apache Kafka (KRaft, single node).",
        "Fetch Kafka's jars if needed, start the broker and wait until it answers.",
    )
)
main.add_command(
    _service_group(
        "postgres",
        POSTGRES_SCRIPT,
        "The project's own local PostgreSQL 15 (wal_level=logical) for the jobcentre connector.",
        "Install PostgreSQL 15 and wal2json if needed, init the cluster, start, wait for it.",
    )
)


@main.command()
@config_option
def worker(config_file: Path | None) -> None:
    """Run a stream worker (Faust): identity, timeline and the coordinator API."""
    from backbone.event_loop import use_uvloop
    from backbone.logging import configure_logging
    from backbone.settings import load_settings
    from streams.app import run_worker
    from streams.settings import WorkerSettings

    settings = load_settings(WorkerSettings, config_file)
    configure_logging(settings.log_level)
    use_uvloop()
    run_worker(settings)


@main.group()
def connector() -> None:
    """Agency connectors."""


@connector.command("run")
@click.argument("name")
@config_option
def connector_run(name: str, config_file: Path | None) -> None:
    """Run one connector: hl7-mllp, jobcentre-cdc, housing-csv or social-care-webhook."""
    from connectors.registry import run

    run(name, config_file)


@main.group()
def schemas() -> None:
    """The Avro contracts in avro_schemas/."""


@schemas.command("check")
@click.option(
    "--dir",
    "schemas_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=REPO_ROOT / "avro_schemas",
    show_default=True,
)
def schemas_check(schemas_dir: Path) -> None:
    """Validate the schemas and their backward compatibility with the released versions."""
    from backbone.codec import SchemaStore
    from backbone.compatibility import check_schemas

    reports = check_schemas(SchemaStore(schemas_dir))
    for report in reports:
        released = f"v{report.released_version}" if report.released_version else "unreleased"
        state = "changed" if report.changed else "unchanged"
        verdict = "ok" if report.ok else f"INCOMPATIBLE: {report.problem}"
        click.echo(f"{report.name}: {state} since {released}: {verdict}")
    if not all(report.ok for report in reports):
        sys.exit(1)


@schemas.command("release")
def schemas_release() -> None:
    """Snapshot every changed, compatible topic schema as its next released version."""
    from backbone.codec import SchemaStore
    from backbone.compatibility import release_schemas

    written = release_schemas(SchemaStore(REPO_ROOT / "avro_schemas"))
    for path in written:
        click.echo(f"released {path.relative_to(REPO_ROOT)}")
    if not written:
        click.echo("nothing changed since the last release")


@main.group()
def rules() -> None:
    """Cross-agency alert rules (deploy/rules/rules.yaml)."""


@rules.command("check")
@click.argument("rule_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--with-tests",
    is_flag=True,
    help="Pass it only if its tests pass: the test files in <its directory>/tests/ that name it",
)
def rules_check(rule_file: Path, with_tests: bool) -> None:
    """Validate a rule file and print its rules; exit 1 naming each rule and field in error
    (with --with-tests: or each test that fails)."""
    from streams.alerting.rule_tests import tests_naming
    from streams.alerting.rules import RuleFileError, format_duration, load_rules

    try:
        rule_set = load_rules(rule_file)
    except RuleFileError as exc:
        for problem in exc.problems:
            click.echo(f"{exc.source}: {problem}", err=True)
        sys.exit(1)
    for rule in rule_set.rules:
        click.echo(
            f"{rule.id} v{rule.version} {rule.name}: {rule.severity.value} -> "
            f"{', '.join(rule.notify)}; dedup {format_duration(rule.dedup)}, "
            f"lateness {format_duration(rule.allowed_lateness)}, decide {rule.decide.value}"
        )
        click.echo(f"  when {rule.describe_when()}")
        for condition in rule.conditions:
            click.echo(f"  and {condition.describe()}")
    passed = ""
    if with_tests:
        test_files = tests_naming(rule_file)
        if not test_files:
            click.echo(f"{rule_file}: refused: no test file in its tests/ names it", err=True)
            sys.exit(1)
        verdicts = _rule_tests(test_files)
        failed = [verdict.name for verdict in verdicts if not verdict.ok]
        if failed:
            click.echo(
                f"{rule_file}: refused: {len(failed)} test(s) failed: {'; '.join(failed)}",
                err=True,
            )
            sys.exit(1)
        passed = f", {len(verdicts)} tests passed"
    click.echo(f"{rule_file}: {len(rule_set.rules)} rules ok{passed}")


@rules.command("test")
@click.argument("test_files", nargs=-1, required=True, type=click.Path(path_type=Path))
def rules_test(test_files: tuple[Path, ...]) -> None:
    """Run rule test files (given events, expected alerts) through the alert processor's code;
    one line per test; exit 1 if one fails, 2 if a test file is malformed."""
    verdicts = _rule_tests(list(test_files))
    failed = sum(not verdict.ok for verdict in verdicts)
    click.echo(f"{len(verdicts)} test(s): {len(verdicts) - failed} ok, {failed} failed")
    if failed:
        sys.exit(1)


def _rule_tests(paths: list[Path]) -> list[Verdict]:
    """Load every test file (exit 2 naming each problem if one is malformed), run them and
    print a line per test (and what was expected and raised, for a failure)."""
    from streams.alerting.rule_tests import RuleTestFileError, load_test_file, run_file

    loaded, malformed = [], False
    for path in paths:
        try:
            loaded.append(load_test_file(path))
        except RuleTestFileError as exc:
            malformed = True
            for problem in exc.problems:
                click.echo(f"{exc.source}: {problem}", err=True)
    if malformed:
        sys.exit(2)
    verdicts = [verdict for test_file in loaded for verdict in run_file(test_file)]
    for verdict in verdicts:
        for line in verdict.lines():
            click.echo(line)
    return verdicts


@rules.command("replay")
@click.option(
    "--rules",
    "rule_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The rule file to try",
)
@click.option(
    "--from",
    "since",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Replay events that occurred on or after this date (UTC)",
)
@config_option
def rules_replay(rule_file: Path, since: datetime, config_file: Path | None) -> None:
    """Print the alerts a rule file would have raised over the person-events history.

    Reads the deployment's person-events topic from the start (settings from BACKBONE_* or
    --config), runs the alert processor's own code in memory and notifies nobody.
    """
    from backbone.settings import load_settings
    from streams.alerting.replay import describe, replay
    from streams.alerting.rules import load_rules
    from streams.settings import AlertSettings

    settings = load_settings(AlertSettings, config_file)
    rule_set = load_rules(rule_file)
    result = replay(settings, rule_set, since.replace(tzinfo=UTC))
    for alert in result.raised:
        for line in describe(alert, result.withdrawn.get(alert.alert_id)):
            click.echo(line)
    counts, withdrawn = result.per_rule(), result.withdrawn_per_rule()
    for rule in rule_set.rules:
        click.echo(
            f"{rule.id}: {counts.get(rule.id, 0)} alert(s), "
            f"{withdrawn.get(rule.id, 0)} of them withdrawn"
        )
    click.echo(
        f"{len(result.raised)} alert(s) would have been raised, {len(result.withdrawn)} of "
        f"them withdrawn later ({result.absorbed} later match(es) absorbed) from "
        f"{result.replayed} of {result.read} events"
        + (f"; {result.undecodable} undecodable skipped" if result.undecodable else "")
    )


@main.command()
@click.option("--coordinator", required=True, help="The coordinator's name")
@click.option("--team", "teams", multiple=True, required=True, help="A team (repeatable)")
@click.option("--role", required=True, help="coordinator, social_worker, health_practitioner, ...")
@click.option("--ttl", "ttl_s", default=8 * 3600, show_default=True, help="Validity in seconds")
def token(coordinator: str, teams: tuple[str, ...], role: str, ttl_s: int) -> None:
    """Issue a coordinator token signed with BACKBONE_TOKEN_SECRET (or _FILE)."""
    import os

    from backbone.secret_settings import read_secret
    from backbone.tokens import issue_token

    secret = read_secret(os.environ, "BACKBONE_TOKEN_SECRET")
    if secret is None:
        fail("BACKBONE_TOKEN_SECRET is not set (nor BACKBONE_TOKEN_SECRET_FILE)")
    click.echo(issue_token(secret.encode(), coordinator, list(teams), role, ttl_s))


@main.command()
@click.option("--agency", required=True, help="health, jobcentre, housing or social_care")
@click.option("--id-type", required=True, help="The agency's identifier type, e.g. hospital_number")
@click.option("--id", "local_id", required=True, help="The agency's identifier of the person")
@click.option("--reason", required=True, help="Why (the erasure request's reference)")
@click.option("--timeout", "timeout_s", default=60.0, show_default=True, help="Seconds to wait")
@config_option
def erase(
    agency: str,
    id_type: str,
    local_id: str,
    reason: str,
    timeout_s: float,
    config_file: Path | None,
) -> None:
    """Right to erasure: forget the person this agency identifier belongs to."""
    from backbone.settings import BackboneSettings, load_settings
    from cli.erasure import erase as erase_person

    settings = load_settings(BackboneSettings, config_file)
    erasure = erase_person(settings, agency, id_type, local_id, reason, timeout_s)
    if erasure.person_id is None:
        fail("no person has that identifier (nothing erased; the request is audited)")
    click.echo(f"erased person {erasure.person_id}: {erasure.records} agency record(s)")


@main.command()
@click.option(
    "--exit",
    "exit_when_done",
    is_flag=True,
    help="Stop everything after printing the results instead of waiting for Ctrl-C",
)
def demo(exit_when_done: bool) -> None:
    """Start broker, worker and connector, play sample agency traffic, print the timelines."""
    from cli.demo import run_demo

    run_demo(wait=not exit_when_done)


SIZE_OPTIONS = (
    ("--warmup-events", int, "Events before the pipeline's clock starts (default 500)"),
    ("--pipeline-events", int, "Events of the pipeline burst (default 50,000)"),
    ("--latency-rate", float, "Offered events/s of the latency run (default 1,000)"),
    ("--latency-seconds", float, "Length of the latency run (default 30)"),
    ("--backfill-events", int, "Events of the replay (default 1,000,000)"),
    ("--soak-seconds", float, "Length of the memory soak (default 600)"),
    ("--ingest-records", int, "Requests / messages per connector benchmark (default 20,000)"),
)


def size_options(command: Callable[..., None]) -> Callable[..., None]:
    """The benchmark's size flags; unset ones keep the full or --quick default."""
    for flag, kind, about in reversed(SIZE_OPTIONS):
        command = click.option(flag, type=kind, help=about)(command)
    return command


@main.command()
@click.option("--quick", is_flag=True, help="Tiny sizes (seconds): proves the benchmark works")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench-results/bench.json"),
    show_default=True,
    help="Where the figures go",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench-results/bench.png"),
    show_default=True,
    help="Where the PNG goes",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Stream workers to run")
@click.option(
    "--bootstrap",
    envvar="BACKBONE_KAFKA_BOOTSTRAP",
    default="127.0.0.1:19092",
    show_default=True,
    help="Kafka; the project's own broker is started (and stopped after) if none answers",
)
@size_options
def bench(quick: bool, **chosen: Any) -> None:
    """Measure the backbone through the real broker: ceiling, pipeline, latency, ingest,
    backfill, memory; write JSON and a PNG (README, "Benchmark")."""
    from bench.run import BenchOptions, run_bench
    from bench.summary import summary

    sizes = {key: value for key, value in chosen.items() if value is not None}
    options = BenchOptions.quick(**sizes) if quick else BenchOptions(**sizes)
    figures = run_bench(options, say=lambda line: click.echo(f"bench: {line}", err=True))
    click.echo(summary(figures))
