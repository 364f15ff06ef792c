"""Settings come from BACKBONE_* variables or a --config file; errors name the setting.
Every secret may instead be given as a file (`<variable>_FILE`), as container secrets are."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from backbone.contracts import Agency
from backbone.errors import ConfigurationError
from backbone.pseudonyms import Pseudonymiser
from backbone.secret_settings import secret_fields
from backbone.settings import load_settings
from backbone.topics import Topics
from cli.kafka_probe import read_all
from cli.processes import BackboneProcess
from connectors.hl7_mllp.config import Hl7MllpSettings
from connectors.housing_csv.config import HousingCsvSettings
from connectors.jobcentre_cdc.config import JobcentreCdcSettings
from connectors.social_care_webhook.config import SocialCareWebhookSettings
from simulators.social_care import CaseEvent, CaseManagementSystem, CasePerson
from streams.alerting.notifications.routing import RoutingFileError, parse_routing
from streams.settings import WorkerSettings
from tests.conftest import Deployment

KEY = "k" * 32


def secret_file(directory: Path, content: str) -> Path:
    path = directory / f"secret-{uuid.uuid4().hex}"
    path.write_text(content)
    return path


@pytest.fixture
def only_the_pseudonym_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pseudonym key set, and no webhook secret in either form."""
    monkeypatch.setenv("BACKBONE_PSEUDONYM_KEY", KEY)
    monkeypatch.delenv("BACKBONE_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.delenv("BACKBONE_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("BACKBONE_WEBHOOK_SECRET_FILE", raising=False)


@pytest.mark.usefixtures("only_the_pseudonym_key")
def test_a_missing_secret_is_an_error_naming_the_variable_and_its_file_form() -> None:
    with pytest.raises(
        ConfigurationError,
        match="BACKBONE_WEBHOOK_SECRET: not set; set it, or BACKBONE_WEBHOOK_SECRET_FILE",
    ):
        load_settings(SocialCareWebhookSettings)


def test_a_config_file_sets_the_same_keys_and_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BACKBONE_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("BACKBONE_WEBHOOK_PORT", "9000")
    config = tmp_path / "social-care.yaml"
    config.write_text("webhook_secret: s3cret\nWEBHOOK_PORT: 8443\n")
    settings = load_settings(SocialCareWebhookSettings, config)
    assert settings.webhook_port == 8443
    assert settings.webhook_secret.get_secret_value() == "s3cret"
    assert settings.kafka_bootstrap == "127.0.0.1:19092"


def test_a_wrong_value_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BACKBONE_PSEUDONYM_KEY", KEY)
    config = tmp_path / "bad.yaml"
    config.write_text("webhook_secret: s\nwebhook_port: eighty\n")
    with pytest.raises(ConfigurationError, match="BACKBONE_WEBHOOK_PORT"):
        load_settings(SocialCareWebhookSettings, config)


def test_the_secret_settings_are_the_keys_the_secrets_and_the_database_address() -> None:
    every_process = (
        SocialCareWebhookSettings,
        Hl7MllpSettings,
        JobcentreCdcSettings,
        HousingCsvSettings,
        WorkerSettings,
    )
    assert {name for cls in every_process for name in secret_fields(cls)} == {
        "pseudonym_key",
        "webhook_secret",
        "cdc_dsn",
        "token_secret",
    }


@pytest.mark.usefixtures("only_the_pseudonym_key")
def test_a_secret_file_holds_the_secret_without_its_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BACKBONE_PSEUDONYM_KEY")
    monkeypatch.setenv("BACKBONE_PSEUDONYM_KEY_FILE", str(secret_file(tmp_path, KEY + "\n")))
    monkeypatch.setenv("BACKBONE_WEBHOOK_SECRET_FILE", str(secret_file(tmp_path, " s3 cret \r\n")))

    settings = load_settings(SocialCareWebhookSettings)

    assert settings.pseudonym_key.get_secret_value() == KEY
    assert settings.webhook_secret.get_secret_value() == " s3 cret "


@pytest.mark.usefixtures("only_the_pseudonym_key")
def test_a_secret_given_both_ways_is_an_error_naming_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BACKBONE_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("BACKBONE_WEBHOOK_SECRET_FILE", str(secret_file(tmp_path, "s3cret")))
    with pytest.raises(
        ConfigurationError,
        match="BACKBONE_WEBHOOK_SECRET and BACKBONE_WEBHOOK_SECRET_FILE are both set",
    ):
        load_settings(SocialCareWebhookSettings)


@pytest.mark.usefixtures("only_the_pseudonym_key")
def test_an_empty_variable_is_refused_and_gives_way_to_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BACKBONE_WEBHOOK_SECRET", "")
    with pytest.raises(ConfigurationError, match="BACKBONE_WEBHOOK_SECRET: is empty"):
        load_settings(SocialCareWebhookSettings)

    monkeypatch.setenv("BACKBONE_WEBHOOK_SECRET_FILE", str(secret_file(tmp_path, "s3cret")))
    settings = load_settings(SocialCareWebhookSettings)
    assert settings.webhook_secret.get_secret_value() == "s3cret"


@pytest.mark.usefixtures("only_the_pseudonym_key")
@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "No such file or directory"), ("\n", "is empty"), (b"\xff\xfe", "not UTF-8 text")],
)
def test_a_secret_file_that_cannot_be_used_is_an_error_naming_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str | bytes | None, problem: str
) -> None:
    path = tmp_path / "webhook-secret"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    monkeypatch.setenv("BACKBONE_WEBHOOK_SECRET_FILE", str(path))

    with pytest.raises(ConfigurationError) as raised:
        load_settings(SocialCareWebhookSettings)

    assert str(raised.value).startswith("BACKBONE_WEBHOOK_SECRET_FILE: ")
    assert str(path) in str(raised.value)
    assert problem in str(raised.value)


@pytest.mark.usefixtures("only_the_pseudonym_key")
def test_a_config_file_may_name_a_secret_file_and_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BACKBONE_WEBHOOK_SECRET", "from-the-environment")
    path = secret_file(tmp_path, "from-the-file\n")
    config = tmp_path / "social-care.yaml"
    config.write_text(f"webhook_secret_file: {path}\n")

    settings = load_settings(SocialCareWebhookSettings, config)
    assert settings.webhook_secret.get_secret_value() == "from-the-file"

    config.write_text(f"webhook_secret_file: {path}\nwebhook_secret: s3cret\n")
    with pytest.raises(
        ConfigurationError, match="config file: webhook_secret and webhook_secret_file"
    ):
        load_settings(SocialCareWebhookSettings, config)


def test_the_database_address_is_a_secret_and_may_be_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BACKBONE_PSEUDONYM_KEY", KEY)
    monkeypatch.delenv("BACKBONE_CDC_DSN", raising=False)
    dsn = "host=db.example.org user=backbone password=hunter2"
    monkeypatch.setenv("BACKBONE_CDC_DSN_FILE", str(secret_file(tmp_path, dsn + "\n")))

    settings = load_settings(JobcentreCdcSettings)

    assert settings.cdc_dsn.get_secret_value() == dsn
    assert "hunter2" not in repr(settings)


def test_a_notification_webhook_secret_may_be_a_file_too(tmp_path: Path) -> None:
    text = """
teams:
  housing-officers: [{webhook: {url: "http://127.0.0.1:1/x", secret_env: HOOK}}]
"""
    path = secret_file(tmp_path, "hook-secret\n")

    routing = parse_routing(text, {"HOOK_FILE": str(path)})
    secret = routing.recipients_for(["housing-officers"])[0].secret
    assert secret is not None and secret.get_secret_value() == "hook-secret"

    with pytest.raises(RoutingFileError, match="HOOK and HOOK_FILE are both set"):
        parse_routing(text, {"HOOK": "s3cret", "HOOK_FILE": str(path)})
    with pytest.raises(RoutingFileError, match=f"HOOK_FILE: cannot read secret file {tmp_path}"):
        parse_routing(text, {"HOOK_FILE": str(tmp_path / "absent")})


def test_a_process_refuses_to_start_naming_the_secret_file_it_cannot_read(
    tmp_path: Path,
) -> None:
    absent = tmp_path / "webhook-secret"
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("BACKBONE_")},
        "BACKBONE_PSEUDONYM_KEY_FILE": str(secret_file(tmp_path, KEY)),
        "BACKBONE_WEBHOOK_SECRET_FILE": str(absent),
    }
    result = subprocess.run(
        [sys.executable, "-m", "cli", "connector", "run", "social-care-webhook"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"BACKBONE_WEBHOOK_SECRET_FILE: cannot read secret file {absent}" in result.stderr


def test_a_connector_started_with_secret_files_checks_and_pseudonymises_with_them(
    deployment: Deployment, tmp_path: Path
) -> None:
    env = deployment.env()
    del env["BACKBONE_PSEUDONYM_KEY"], env["BACKBONE_WEBHOOK_SECRET"]
    env["BACKBONE_PSEUDONYM_KEY_FILE"] = str(secret_file(tmp_path, deployment.pseudonym_key))
    env["BACKBONE_WEBHOOK_SECRET_FILE"] = str(secret_file(tmp_path, "file-secret\n"))
    connector = BackboneProcess.start(
        "social-care-webhook",
        ["connector", "run", "social-care-webhook"],
        env,
        tmp_path,
        f"http://127.0.0.1:{deployment.connector_metrics_port}/health",
    )
    url = f"http://127.0.0.1:{deployment.webhook_port}"
    event = CaseEvent(
        "case_opened",
        datetime(2026, 6, 1, tzinfo=UTC),
        "C-FILE",
        CasePerson("CP-FILE", "Ames", "Kit", date(1980, 1, 1)),
    )
    try:
        connector.wait_healthy()
        signed_with_the_file = CaseManagementSystem(url, b"file-secret")
        signed_otherwise = CaseManagementSystem(url, deployment.webhook_secret.encode())
        accepted = signed_with_the_file.deliver(event)
        refused = signed_otherwise.deliver(event)
        signed_with_the_file.close()
        signed_otherwise.close()
    finally:
        assert connector.stop() == 0

    assert accepted.status_code == 202
    assert refused.status_code == 401
    topic = Topics(deployment.prefix).agency_events(Agency.SOCIAL_CARE)
    [published] = [
        record
        for record in read_all(deployment.bootstrap, topic)
        if record.headers["event_id"].decode() == accepted.json()["event_id"]
    ]
    pseudonyms = Pseudonymiser(deployment.pseudonym_key.encode())
    assert (
        published.key == pseudonyms.record_id("social_care", "case_person_id", "CP-FILE").encode()
    )
