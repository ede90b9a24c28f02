"""The config: every key validated, errors name the key, secrets from env or file."""

from __future__ import annotations

from pathlib import Path

import pytest
from ipunkt.config import (
    ConfigError,
    channel_configs,
    load_settings,
    parse_settings,
    starter_config,
)
from ipunkt.plugins import load_plugins

ORG = {"organisation": {"number": "910077473"}}


def errors_of(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, source="ipunkt.toml")
    return str(caught.value).splitlines()


def test_defaults() -> None:
    settings = parse_settings(ORG)
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 9093)
    assert settings.logging.format == "auto"


def test_unknown_keys_are_errors_naming_their_path() -> None:
    assert errors_of({**ORG, "server": {"prot": 80}, "extra": 1}) == [
        "ipunkt.toml: server.prot: unknown key",
        "ipunkt.toml: extra: unknown key",
    ]


def test_wrong_values_name_the_key_and_what_is_wrong() -> None:
    lines = errors_of({"organisation": {"number": "12345"}, "server": {"port": "http"}})
    assert lines[0].startswith("ipunkt.toml: organisation.number: Value error, must be a 9-digit")
    assert "(got '12345')" in lines[0]
    assert lines[1].startswith("ipunkt.toml: server.port: Input should be a valid integer")


def test_missing_required_key() -> None:
    assert errors_of({}) == ["ipunkt.toml: organisation: required key is missing"]


def test_required_plugins_must_be_requirement_specifiers() -> None:
    lines = errors_of({**ORG, "plugins": {"required_plugins": ["ipunkt-dpo>>1"]}})
    assert lines[0].startswith(
        "ipunkt.toml: plugins.required_plugins: Value error, 'ipunkt-dpo>>1'")


def test_values_from_environment_and_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ORGNR", "910075918")
    secret = tmp_path / "host.txt"
    secret.write_text("0.0.0.0\n")
    settings = parse_settings(
        {"organisation": {"number": {"env": "ORGNR"}}, "server": {"host": {"file": str(secret)}}}
    )
    assert settings.organisation.number == "910075918"
    assert settings.server.host == "0.0.0.0"


def test_missing_environment_variable_and_file(tmp_path: Path) -> None:
    assert errors_of({"organisation": {"number": {"env": "IPUNKT_TEST_UNSET"}}}) == [
        "ipunkt.toml: organisation.number: environment variable 'IPUNKT_TEST_UNSET' is not set"
    ]
    missing = tmp_path / "nope"
    assert errors_of({**ORG, "server": {"host": {"file": str(missing)}}}) == [
        f"ipunkt.toml: server.host: cannot read {missing}: No such file or directory"
    ]


def test_load_reports_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_channel_sections_are_validated_by_their_plugin() -> None:
    host = load_plugins()
    settings = parse_settings({**ORG, "channels": {"dpo": {"poll_interval": -1, "colour": 1}}})
    with pytest.raises(ConfigError) as caught:
        channel_configs(settings, host)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("config: channels.dpo.poll_interval: Input should be greater than 0")
    assert lines[1] == "config: channels.dpo.colour: unknown key"


def test_a_secret_in_a_channel_section(monkeypatch) -> None:
    monkeypatch.setenv("FIKS_PASSWORD", "hemmelig")
    settings = parse_settings(
        {**ORG, "channels": {"dpf": {"integration_password": {"env": "FIKS_PASSWORD"}}}}
    )
    config = channel_configs(settings, load_plugins())["DPF"]
    assert config.integration_password.get_secret_value() == "hemmelig"
    assert "hemmelig" not in repr(config)


def test_a_section_no_plugin_provides_is_an_error() -> None:
    settings = parse_settings({**ORG, "channels": {"dpz": {"enabled": True}}})
    with pytest.raises(ConfigError, match=r"channels\.dpz: no installed plugin provides"):
        channel_configs(settings, load_plugins())


def test_starter_config_round_trips_and_covers_installed_plugins(tmp_path: Path) -> None:
    host = load_plugins()
    text = starter_config(host, "910075918")
    for service in host.channels:
        assert f"[channels.{service.lower()}]" in text
    path = tmp_path / "ipunkt.toml"
    path.write_text(text)
    settings = load_settings(path)
    assert settings.organisation.number == "910075918"
    configs = channel_configs(settings, host)
    assert set(configs) == set(host.channels)
