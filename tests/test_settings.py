"""Settings come from BACKBONE_* variables or a --config file; errors name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from backbone.errors import ConfigurationError
from backbone.settings import load_settings
from connectors.social_care_webhook.config import SocialCareWebhookSettings


def test_a_missing_secret_is_an_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKBONE_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("BACKBONE_PSEUDONYM_KEY", "k" * 32)
    with pytest.raises(ConfigurationError, match="BACKBONE_WEBHOOK_SECRET: Field required"):
        load_settings(SocialCareWebhookSettings)


def test_a_config_file_sets_the_same_keys_and_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BACKBONE_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("BACKBONE_WEBHOOK_PORT", "9000")
    config = tmp_path / "social-care.yaml"
    config.write_text("webhook_secret: s3cret\nWEBHOOK_PORT: 8443\n")
    settings = load_settings(SocialCareWebhookSettings, config)
    assert settings.webhook_port == 8443
    assert settings.webhook_secret.get_secret_value() == "s3cret"
    assert settings.kafka_bootstrap == "127.0.0.1:19092"


def test_a_wrong_value_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BACKBONE_PSEUDONYM_KEY", "k" * 32)
    config = tmp_path / "bad.yaml"
    config.write_text("webhook_secret: s\nwebhook_port: eighty\n")
    with pytest.raises(ConfigurationError, match="BACKBONE_WEBHOOK_PORT"):
        load_settings(SocialCareWebhookSettings, config)
