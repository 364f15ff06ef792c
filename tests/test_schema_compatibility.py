"""The schema evolution gate: a change that breaks backward compatibility fails here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from backbone.codec import SchemaStore
from backbone.compatibility import check_schemas, release_schemas
from backbone.contracts import TOPIC_SCHEMAS
from backbone.settings import REPO_ROOT
from cli.main import main

SCHEMAS = REPO_ROOT / "avro_schemas"


def test_every_topic_schema_reads_what_its_last_release_wrote() -> None:
    reports = check_schemas(SchemaStore(SCHEMAS))
    assert [r.name for r in reports] == list(TOPIC_SCHEMAS)
    problems = {r.name: r.problem for r in reports if not r.ok}
    assert problems == {}, (
        "a schema change is not backward compatible with its released version; "
        "add defaults to new fields instead of changing types or removing defaults"
    )


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    copy = tmp_path / "avro_schemas"
    shutil.copytree(SCHEMAS, copy)
    return copy


def edit(schemas: Path, name: str, change: dict[str, object]) -> None:
    path = schemas / f"{name}.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append(change)
    path.write_text(json.dumps(schema))


def test_a_new_field_without_default_is_incompatible(schemas: Path) -> None:
    edit(schemas, "backbone.Envelope", {"name": "region", "type": "string"})
    reports = {r.name: r for r in check_schemas(SchemaStore(schemas))}
    broken = reports["backbone.socialcare.SocialCareEvent"]
    assert broken.changed and not broken.ok
    assert "region" in (broken.problem or "")
    result = CliRunner().invoke(main, ["schemas", "check", "--dir", str(schemas)])
    assert result.exit_code == 1
    assert "backbone.health.HealthEvent: changed since v1: INCOMPATIBLE" in result.output


def test_a_changed_field_type_is_incompatible(schemas: Path) -> None:
    path = schemas / "backbone.housing.Tenancy.avsc"
    path.write_text(
        path.read_text().replace(
            '"name": "household_size", "type": "int"', '"name": "household_size", "type": "string"'
        )
    )
    reports = {r.name: r for r in check_schemas(SchemaStore(schemas))}
    assert not reports["backbone.housing.HousingEvent"].ok


def test_a_new_field_with_a_default_is_compatible_and_can_be_released(schemas: Path) -> None:
    edit(
        schemas,
        "backbone.socialcare.SocialCareEvent",
        {"name": "team", "type": ["null", "string"], "default": None},
    )
    store = SchemaStore(schemas)
    report = {r.name: r for r in check_schemas(store)}["backbone.socialcare.SocialCareEvent"]
    assert report.changed and report.ok
    assert report.released_version is not None
    following = report.released_version + 1

    written = release_schemas(store)

    assert [p.name for p in written] == [f"backbone.socialcare.SocialCareEvent.v{following}.avsc"]
    again = {r.name: r for r in check_schemas(SchemaStore(schemas))}
    assert again["backbone.socialcare.SocialCareEvent"].released_version == following
    assert not again["backbone.socialcare.SocialCareEvent"].changed
