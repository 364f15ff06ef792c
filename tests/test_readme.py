"""The README documents every setting a process reads."""

from __future__ import annotations

from backbone.settings import REPO_ROOT
from connectors.hl7_mllp.config import Hl7MllpSettings
from connectors.housing_csv.config import HousingCsvSettings
from connectors.jobcentre_cdc.config import JobcentreCdcSettings
from connectors.social_care_webhook.config import SocialCareWebhookSettings
from streams.alerting.notifications.settings import NotificationSettings
from streams.settings import WorkerSettings

SETTINGS = (
    Hl7MllpSettings,
    HousingCsvSettings,
    NotificationSettings,
    JobcentreCdcSettings,
    SocialCareWebhookSettings,
    WorkerSettings,
)


def test_every_setting_is_documented_with_its_variable() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    fields = {name for settings in SETTINGS for name in settings.model_fields}
    missing = sorted(
        f"BACKBONE_{name.upper()}" for name in fields if f"`BACKBONE_{name.upper()}`" not in readme
    )
    assert missing == []
