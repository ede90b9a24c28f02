"""Every hook is documented with its exact signature and has a test of its own."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from ipunkt.channels import ChannelSet
from ipunkt.errors import ServiceNotEnabled
from ipunkt.plugin import ChannelInfo, Hooks, hookimpl
from ipunkt.plugins import PluginHost, PluginRecord, PluginStatus

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(
    name for name, value in inspect.getmembers(Hooks) if hasattr(value, "ipunkt_spec")
)


def signature(name: str) -> str:
    parameters = [p for p in inspect.signature(getattr(Hooks, name)).parameters if p != "self"]
    return f"{name}({', '.join(parameters)})"


@pytest.mark.parametrize("name", HOOKS)
def test_plugin_hooks_are_documented(name: str) -> None:
    docs = (ROOT / "docs" / "plugin-hooks.md").read_text()
    assert f"## {signature(name)}\n" in docs, f"docs/plugin-hooks.md lacks ## {signature(name)}"
    assert inspect.getdoc(getattr(Hooks, name)), f"hook {name} has no docstring"


@pytest.mark.parametrize("name", HOOKS)
def test_plugin_hooks_have_tests(name: str) -> None:
    sources = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py")]
    pattern = re.compile(rf"^(async )?def test_hook_{name}\b", re.MULTILINE)
    assert any(pattern.search(path.read_text()) for path in sources), f"no test_hook_{name}"


def test_hook_register_channels() -> None:
    class Sender:
        @hookimpl
        def register_channels(self, register):
            register(
                ChannelInfo(service="DPT", name="test", message_types=frozenset({"avtalt"}),
                            max_size=10)
            )

    host = PluginHost()
    host.add(Sender(), PluginRecord("sender", None, None, PluginStatus.OK))
    host.collect()
    assert host.records[0].services == ["DPT"]
    channels = ChannelSet("910077473", host.channels, {})
    with pytest.raises(ServiceNotEnabled, match="has no transport"):
        channels.channel_for("DPT")
