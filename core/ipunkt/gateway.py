"""Assemble a gateway from its config: settings, loaded plugins, validated channel sections.

Shared by ``ipunkt serve`` and the other commands, so that each sees the same plugins the
server would run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ipunkt.config import ConfigError, Settings, channel_configs, load_settings
from ipunkt.lookup.assembly import available_sources, lookup_source_configs
from ipunkt.plugin import ChannelConfig
from ipunkt.plugins import PluginHost, load_plugins


@dataclass(frozen=True)
class Gateway:
    settings: Settings
    plugins: PluginHost
    channel_configs: dict[str, ChannelConfig]


def load_gateway(path: Path) -> Gateway:
    """Load and check everything a start needs; ConfigError says what stops it."""
    settings = load_settings(path)
    plugins = load_plugins(settings.plugins.allow, settings.plugins.disable)
    problems = plugins.check_required(settings.plugins.required_plugins)
    if problems:
        raise ConfigError("\n".join(f"{path}: plugins.required_plugins: {p}" for p in problems))
    lookup_source_configs(settings.lookup, available_sources(plugins), plugins)
    return Gateway(settings, plugins, channel_configs(settings, plugins))
