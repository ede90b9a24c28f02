"""The typed keys of the aiohttp application's state (no string keys, no globals)."""

from __future__ import annotations

from aiohttp import web

from ipunkt.channels import ChannelSet
from ipunkt.config import Settings
from ipunkt.plugins import PluginHost

SETTINGS = web.AppKey("settings", Settings)
PLUGINS = web.AppKey("plugins", PluginHost)
CHANNELS = web.AppKey("channels", ChannelSet)
READY = web.AppKey("ready", dict[str, bool])
"""``{"ready": bool}``: true between start-up and the beginning of shutdown."""
