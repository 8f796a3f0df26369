from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.config import Settings, load_settings
from newsletter.errors import ConfigError
from tests.conftest import Newsletter


def write_toml(folder: Path, body: str) -> None:
    (folder / "newsletter.toml").write_text(body, encoding="utf-8")


def test_defaults_apply_without_a_config_file(tmp_path: Path) -> None:
    resolved = load_settings(tmp_path, environ={})
    assert resolved.settings.database_url == "sqlite:///subscribers.db"
    assert resolved.settings.resolved_database_url == f"sqlite:///{tmp_path / 'subscribers.db'}"
    assert set(resolved.sources.values()) == {"default"}


def test_precedence_is_default_then_file_then_environment_then_flag(tmp_path: Path) -> None:
    write_toml(tmp_path, 'organisation = "From File"\nreply_to = "file@harvest.example"\nrate = 3\n')
    environ = {"NEWSLETTER_ORGANISATION": "From Env", "NEWSLETTER_RATE": "7.5"}
    resolved = load_settings(tmp_path, environ=environ, overrides={"rate": 9, "organisation": None})
    s, sources = resolved.settings, resolved.sources
    assert (s.organisation, sources["organisation"]) == ("From Env", "env NEWSLETTER_ORGANISATION")
    assert (s.reply_to, sources["reply_to"]) == ("file@harvest.example", "newsletter.toml")
    assert (s.rate, sources["rate"]) == (9.0, "command line")
    assert (s.connections, sources["connections"]) == (1, "default")


@pytest.mark.parametrize("name", Settings.setting_names())
def test_every_setting_can_come_from_the_environment(tmp_path: Path, name: str) -> None:
    kind = Settings.__dataclass_fields__[name].type
    long_text = "x-value-0123456789abcdef0123456789"  # long enough for the secret key too
    special = {"database_url": "sqlite:///other.db", "timezone": "America/New_York"}
    value = {"float": "2.5", "int": "3"}.get(kind, special.get(name, long_text))
    resolved = load_settings(tmp_path, environ={f"NEWSLETTER_{name.upper()}": value})
    assert str(getattr(resolved.settings, name)) == value
    assert resolved.sources[name] == f"env NEWSLETTER_{name.upper()}"


def test_an_unknown_time_zone_is_refused_when_the_settings_are_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="timezone 'Mars/Olympus' is not a time zone"):
        load_settings(tmp_path, environ={"NEWSLETTER_TIMEZONE": "Mars/Olympus"})
    assert str(load_settings(tmp_path, environ={"NEWSLETTER_TIMEZONE": "Europe/Paris"}).settings.zone) == "Europe/Paris"


def test_secrets_in_the_config_file_are_refused(tmp_path: Path) -> None:
    write_toml(tmp_path, 'secret_key = "oops"\n')
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"):
        load_settings(tmp_path, environ={})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("rate = 'fast'\n", "rate must be float"),
        ("connections = 1.5\n", "connections must be int"),
        ("colour = 'red'\n", "unknown setting 'colour'"),
        ("organisation = \n", "not valid TOML"),
        ("connections = -1\n", "must not be negative"),
        ('organisation = "A\\nB"\n', "control characters"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path: Path, body: str, message: str) -> None:
    write_toml(tmp_path, body)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, environ={})


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_CONNECTIONS"):
        load_settings(tmp_path, environ={"NEWSLETTER_CONNECTIONS": "many"})


def test_config_show_reports_sources_and_masks_secrets(newsletter: Newsletter) -> None:
    env = {"NEWSLETTER_SECRET_KEY": "very-secret-value-0123456789abcdef0123", "NEWSLETTER_RATE": "4"}
    result = newsletter("config", "show", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert "very-secret-value-0123456789abcdef0123" not in result.output
    data = json.loads(result.output)["settings"]
    assert data["secret_key"] == {"value": "********", "source": "env NEWSLETTER_SECRET_KEY"}
    assert data["smtp_password"]["value"] == "(not set)"
    assert data["organisation"] == {"value": "Harvest Test Clinic", "source": "newsletter.toml"}
    assert data["rate"] == {"value": 4.0, "source": "env NEWSLETTER_RATE"}
    assert data["database_url"]["source"] == "command line"
    text = newsletter("config", "show", env=env).output
    assert "very-secret-value-0123456789abcdef0123" not in text and "newsletter.toml" in text


def test_config_show_hides_a_database_password(project: Path) -> None:
    url = "postgresql+psycopg://clinic:hunter2@db.example/news"
    result = Newsletter(project, url)("config", "show", "--json")
    assert "hunter2" not in result.output
    assert json.loads(result.output)["settings"]["database_url"]["value"].startswith("postgresql+psycopg://clinic:***@")


def test_committed_clinic_settings_load() -> None:
    repo = Path(__file__).resolve().parents[1]
    settings = load_settings(repo, environ={}).settings
    assert settings.public_base_url.startswith("https://")
    assert settings.postal_address and settings.from_address.endswith(".example")


def test_a_near_miss_in_the_config_file_suggests_the_setting(tmp_path: Path) -> None:
    write_toml(tmp_path, 'organization = "Harvest"\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'organization' \(did you mean 'organisation'\?\)"):
        load_settings(tmp_path, environ={})


def test_a_misspelt_environment_variable_is_not_ignored_in_silence(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"NEWSLETTER_ORGANIZATION is not a setting \(did you mean 'NEWSLETTER_ORGANISATION'"
    ):
        load_settings(tmp_path, environ={"NEWSLETTER_ORGANIZATION": "Harvest"})
    # Unrelated variables with the prefix (NEWSLETTER_DEBUG, a team's own) are left alone.
    assert load_settings(tmp_path, environ={"NEWSLETTER_DEBUG": "1", "NEWSLETTER_TEAM_CHANNEL": "x"}).settings


def test_a_misspelt_flag_override_suggests_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'organisation'"):
        load_settings(tmp_path, environ={}, overrides={"organization": "x"})


def test_config_show_masks_credentials_in_a_url_query_too(project: Path) -> None:
    url = "postgresql+psycopg://clinic:hunter2@db.example/news?password=swordfish&sslmode=require"
    result = Newsletter(project, url)("config", "show", "--json")
    shown = json.loads(result.output)["settings"]["database_url"]["value"]
    assert "hunter2" not in result.output and "swordfish" not in result.output
    assert shown == "postgresql+psycopg://clinic:***@db.example/news?password=***&sslmode=require"
    init = Newsletter(project, url)("init")  # unreachable, but whatever it prints stays masked
    assert "hunter2" not in init.output and "swordfish" not in init.output


@pytest.mark.parametrize("key", ["short", "x" * 31])
def test_a_short_secret_key_is_refused_with_the_command_that_makes_a_good_one(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=r"at least 32.*secrets\.token_urlsafe\(32\)"):
        load_settings(tmp_path, environ={"NEWSLETTER_SECRET_KEY": key})
    assert load_settings(tmp_path, environ={"NEWSLETTER_SECRET_KEY": "x" * 32}).settings.secret_key
