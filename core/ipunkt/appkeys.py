"""The typed keys of the aiohttp application's state (no string keys, no globals)."""

from __future__ import annotations

from aiohttp import web

from ipunkt.channels import ChannelSet
from ipunkt.config import Settings
from ipunkt.delivery.engine import DeliveryEngine
from ipunkt.lookup.address_book import AddressBook
from ipunkt.lookup.routing import Router
from ipunkt.plugins import PluginHost

SETTINGS = web.AppKey("settings", Settings)
PLUGINS = web.AppKey("plugins", PluginHost)
CHANNELS = web.AppKey("channels", ChannelSet)
ADDRESS_BOOK = web.AppKey("address_book", AddressBook)
"""The configured lookup sources, asked in order (``lookup.sources``)."""
ROUTER = web.AppKey("router", Router)
"""Resolves a message's receiver, process and document type to a :class:`Route`."""
READY = web.AppKey("ready", dict[str, bool])
"""``{"ready": bool}``: true between start-up and the beginning of shutdown."""
ENGINE = web.AppKey("engine", DeliveryEngine)
"""Outbox workers, pollers, the lifetime sweeper and webhook pushes."""
