"""Guarded loading: each plugin loads alone; a broken one is listed as failed, never fatal."""

from __future__ import annotations

import pytest
from ipunkt.plugins import PluginStatus, load_plugins

GOOD = """
from ipunkt.plugin import ChannelInfo, hookimpl

@hookimpl
def register_channels(register):
    register(ChannelInfo(service="{service}", name="test", message_types=frozenset({{"avtalt"}}),
                         max_size=1000))
"""


def record(host, name):
    return next(r for r in host.records if r.name == name.replace("-", "_"))


def test_a_good_plugin_registers_its_channel(install_plugin) -> None:
    install_plugin("good-plugin", GOOD.format(service="DPX"))
    host = load_plugins()
    good = record(host, "good-plugin")
    assert good.status is PluginStatus.OK
    assert good.services == ["DPX"]
    assert good.hooks == ["register_channels"]
    assert host.channels["DPX"].max_size == 1000


def test_an_import_error_fails_only_that_plugin(install_plugin) -> None:
    install_plugin("good-plugin", GOOD.format(service="DPX"))
    install_plugin("broken-plugin", "import module_that_does_not_exist\n")
    host = load_plugins()
    broken = record(host, "broken-plugin")
    assert broken.status is PluginStatus.FAILED
    assert "module_that_does_not_exist" in broken.error
    assert record(host, "good-plugin").status is PluginStatus.OK
    assert "DPX" in host.channels


def test_a_hook_that_matches_no_spec_fails_the_plugin(install_plugin) -> None:
    install_plugin(
        "typo-plugin",
        "from ipunkt.plugin import hookimpl\n\n@hookimpl\ndef register_chanels(register):\n"
        "    pass\n",
    )
    typo = record(load_plugins(), "typo-plugin")
    assert typo.status is PluginStatus.FAILED
    assert "register_chanels" in typo.error


def test_an_unknown_hook_argument_fails_the_plugin(install_plugin) -> None:
    install_plugin(
        "argument-plugin",
        "from ipunkt.plugin import hookimpl\n\n@hookimpl\ndef register_channels(register, "
        "gateway):\n    pass\n",
    )
    failed = record(load_plugins(), "argument-plugin")
    assert failed.status is PluginStatus.FAILED
    assert "gateway" in failed.error


def test_a_plugin_for_another_core_version_is_refused(install_plugin) -> None:
    install_plugin("future-plugin", GOOD.format(service="DPX"), requires=("ipunkt>=9,<10",))
    future = record(load_plugins(), "future-plugin")
    assert future.status is PluginStatus.FAILED
    assert "supports ipunkt <10,>=9" in future.error
    assert "this is ipunkt 0.1.0" in future.error


def test_a_raising_registration_hook_fails_only_that_plugin(install_plugin) -> None:
    install_plugin(
        "raising-plugin",
        "from ipunkt.plugin import hookimpl\n\n@hookimpl\ndef register_channels(register):\n"
        "    raise RuntimeError('no config for you')\n",
    )
    install_plugin("good-plugin", GOOD.format(service="DPX"))
    host = load_plugins()
    raising = record(host, "raising-plugin")
    assert raising.status is PluginStatus.FAILED
    assert "RuntimeError: no config for you" in raising.error
    assert "DPX" in host.channels


def test_a_second_plugin_for_the_same_service_fails(install_plugin) -> None:
    install_plugin("first-plugin", GOOD.format(service="DPX"))
    install_plugin("second-plugin", GOOD.format(service="DPX"))
    host = load_plugins()
    statuses = sorted(r.status.value for r in host.records if r.name.endswith("_plugin"))
    assert statuses == ["failed", "ok"]
    loser = next(r for r in host.records if r.status is PluginStatus.FAILED)
    assert "already registered" in loser.error


@pytest.mark.parametrize(
    ("registered", "reason"),
    [
        ("'not a channel'", "not a ChannelInfo"),
        (
            "ChannelInfo(service='dp', name='x', message_types=frozenset(), max_size=1)",
            "is not 2-10 capitals",
        ),
    ],
)
def test_a_malformed_registration_fails_the_plugin(install_plugin, registered, reason) -> None:
    install_plugin(
        "odd-plugin",
        "from ipunkt.plugin import ChannelInfo, hookimpl\n\n@hookimpl\n"
        f"def register_channels(register):\n    register({registered})\n",
    )
    host = load_plugins()
    odd = record(host, "odd-plugin")
    assert odd.status is PluginStatus.FAILED
    assert reason in odd.error
    assert not odd.services


def test_disable_by_environment(install_plugin, monkeypatch) -> None:
    install_plugin("good-plugin", GOOD.format(service="DPX"))
    monkeypatch.setenv("IPUNKT_DISABLE_PLUGINS", "other, good-plugin")
    host = load_plugins()
    assert record(host, "good-plugin").status is PluginStatus.DISABLED
    assert "DPX" not in host.channels


def test_disable_and_allow_by_config(install_plugin) -> None:
    install_plugin("good-plugin", GOOD.format(service="DPX"))
    install_plugin("other-plugin", GOOD.format(service="DPY"))
    host = load_plugins(disable=["other-plugin"])
    assert record(host, "other-plugin").status is PluginStatus.DISABLED
    host = load_plugins(allow=["other_plugin"])
    assert record(host, "good-plugin").status is PluginStatus.DISABLED
    assert record(host, "other-plugin").status is PluginStatus.OK
    assert "not in the config's plugins.allow list" in record(host, "good-plugin").error


def test_required_plugins(install_plugin) -> None:
    install_plugin("good-plugin", GOOD.format(service="DPX"), version="1.2.0")
    install_plugin("broken-plugin", "raise ImportError('boom')\n")
    host = load_plugins()
    assert host.check_required(["good-plugin>=1.0"]) == []
    problems = host.check_required(["good-plugin>=2", "broken-plugin", "absent-plugin"])
    assert problems[0] == "required plugin 'good-plugin>=2' is installed at version 1.2.0"
    assert problems[1].startswith("required plugin 'broken-plugin' is failed: import failed")
    assert problems[2] == "required plugin 'absent-plugin' is not installed"
