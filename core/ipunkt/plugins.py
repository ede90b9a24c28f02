"""Entry-point discovery, guarded loading and listing of plugins.

Each entry point of the group ``ipunkt`` is loaded on its own, so that a broken or
incompatible plugin is recorded as failed, with its reason, while the gateway goes on with the
rest (pluggy's own loader would let one import error take everything down). Core code calls
hooks through :class:`PluginHost`, never through ``pm.hook`` directly.
"""

from __future__ import annotations

import enum
import inspect
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
import structlog
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ipunkt import __version__
from ipunkt.lookup.source import LOOKUP_SOURCE_NAME
from ipunkt.plugin import PROJECT, ChannelInfo, Hooks, LookupSourceInfo, SandboxPart

log = structlog.get_logger(__name__)

DISABLE_ENV = "IPUNKT_DISABLE_PLUGINS"
SERVICE_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")

DEFAULT_PLUGINS: tuple[str, ...] = ("ipunkt.lookup.builtin",)
"""Core modules registered as plugins, so that the core's own features use the hooks too."""


class PluginStatus(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    DISABLED = "disabled"


@dataclass
class PluginRecord:
    """One plugin as the gateway sees it: listed by ``ipunkt plugins`` and the health endpoint."""

    name: str
    distribution: str | None
    version: str | None
    status: PluginStatus
    error: str | None = None
    services: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.status = PluginStatus.FAILED
        self.error = reason

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status.value,
            "services": self.services,
            "hooks": self.hooks,
            "error": self.error,
        }


@dataclass(frozen=True)
class PluginSelection:
    """Which plugins the operator allows: an allow-list (empty: all) and a deny-list."""

    allow: frozenset[str] = frozenset()
    disable: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, allow: Iterable[str] = (), disable: Iterable[str] = ()) -> PluginSelection:
        from_env = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        return cls(
            allow=frozenset(_canonical(n) for n in allow),
            disable=frozenset(_canonical(n) for n in {*disable, *from_env}),
        )

    def reason_disabled(self, *names: str | None) -> str | None:
        keys = {_canonical(n) for n in names if n}
        if keys & self.disable:
            return f"disabled by {DISABLE_ENV} or the config's plugins.disable"
        if self.allow and not keys & self.allow:
            return "not in the config's plugins.allow list"
        return None


def _canonical(name: str) -> str:
    return canonicalize_name(name)


class PluginHost:
    """Owns the plugin manager, the load records and what the plugins registered."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(Hooks)
        self.records: list[PluginRecord] = []
        self.channels: dict[str, ChannelInfo] = {}
        self._channel_owner: dict[str, PluginRecord] = {}
        self.lookup_sources: dict[str, LookupSourceInfo] = {}
        self._lookup_source_owner: dict[str, PluginRecord] = {}
        self.sandbox_parts: dict[str, SandboxPart] = {}
        self._sandbox_owner: dict[str, PluginRecord] = {}

    def load(self, selection: PluginSelection | None = None) -> None:
        """Register the core's default plugins, then every installed entry point."""
        selection = selection or PluginSelection.from_env()
        for module_name in DEFAULT_PLUGINS:
            module = __import__(module_name, fromlist=["_"])
            self.add(module, PluginRecord(module_name, "ipunkt", __version__, PluginStatus.OK))
        for entry_point in metadata.entry_points(group=PROJECT):
            self._load_entry_point(entry_point, selection)
        self.collect()

    def add(self, plugin: object, record: PluginRecord) -> None:
        """Register one plugin object (a module or an instance) under ``record``."""
        self.records.append(record)
        unknown = sorted(set(_hookimpl_names(plugin)) - set(_hookspec_names()))
        if unknown:
            record.fail(f"implements hooks this core does not have: {', '.join(unknown)}")
            return
        try:
            self.pm.register(plugin, name=record.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            record.fail(f"rejected by the plugin manager: {exc}")
            return
        record.hooks = sorted(_hookimpl_names(plugin))

    def _load_entry_point(
        self, entry_point: metadata.EntryPoint, selection: PluginSelection
    ) -> None:
        dist = entry_point.dist
        record = PluginRecord(
            name=entry_point.name,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
            status=PluginStatus.OK,
        )
        disabled = selection.reason_disabled(record.name, record.distribution)
        if disabled:
            record.status = PluginStatus.DISABLED
            record.error = disabled
            self.records.append(record)
            return
        incompatible = _core_incompatibility(dist)
        if incompatible:
            record.fail(incompatible)
            self.records.append(record)
            return
        try:
            plugin = entry_point.load()
        except Exception as exc:  # a plugin's import may raise anything; record it, go on
            record.fail(f"import failed: {type(exc).__name__}: {exc}")
            self.records.append(record)
            log.warning("plugin failed to load", plugin=record.name, error=record.error)
            return
        self.add(plugin, record)

    def collect(self) -> None:
        """Call the registration hooks of every plugin added so far, each on its own."""
        for record, registered in self._call_each("register_channels"):
            for info in registered:
                problem = self._check_channel(info)
                if problem:
                    record.fail(problem)
                    break
            else:
                for info in registered:
                    self.channels[info.service] = info
                    self._channel_owner[info.service] = record
                    record.services.append(info.service)
        self._collect_lookup_sources()
        self._collect_sandbox_parts()
        for record in self.records:
            if record.status is PluginStatus.FAILED:
                for service in [s for s, r in self._channel_owner.items() if r is record]:
                    del self.channels[service]
                    del self._channel_owner[service]
                record.services.clear()
                for service in [s for s, r in self._sandbox_owner.items() if r is record]:
                    del self.sandbox_parts[service]
                    del self._sandbox_owner[service]
                for name in [n for n, r in self._lookup_source_owner.items() if r is record]:
                    del self.lookup_sources[name]
                    del self._lookup_source_owner[name]
                if _is_registered(self.pm, record.name):
                    self.pm.unregister(name=record.name)

    def _collect_sandbox_parts(self) -> None:
        for record, registered in self._call_each("register_sandbox"):
            wrong = [p for p in registered if not isinstance(p, SandboxPart)]
            if wrong:
                record.fail(f"register_sandbox registered {type(wrong[0]).__name__}, "
                            "not a SandboxPart")
                continue
            for part in registered:
                self.sandbox_parts[part.service] = part
                self._sandbox_owner[part.service] = record

    def _collect_lookup_sources(self) -> None:
        for record, registered in self._call_each("register_lookup_sources"):
            problem = next(filter(None, map(self._check_lookup_source, registered)), None)
            if problem:
                record.fail(problem)
                continue
            for info in registered:
                self.lookup_sources[info.name] = info
                self._lookup_source_owner[info.name] = record

    def _check_lookup_source(self, info: object) -> str | None:
        if not isinstance(info, LookupSourceInfo):
            return (
                f"register_lookup_sources registered {type(info).__name__}, "
                "not a LookupSourceInfo"
            )
        if not re.match(LOOKUP_SOURCE_NAME, info.name):
            return f"lookup source name {info.name!r} is not lower-case letters, digits, dashes"
        if info.name in self.lookup_sources:
            owner = self._lookup_source_owner[info.name].name
            return f"lookup source {info.name!r} is already registered by plugin {owner!r}"
        return None

    def _check_channel(self, info: object) -> str | None:
        if not isinstance(info, ChannelInfo):
            return f"register_channels registered {type(info).__name__}, not a ChannelInfo"
        if not SERVICE_PATTERN.match(info.service):
            return f"channel service identifier {info.service!r} is not 2-10 capitals/digits"
        if info.service in self.channels:
            owner = self._channel_owner[info.service].name
            return f"channel {info.service} is already registered by plugin {owner!r}"
        return None

    def _call_each(self, hook_name: str) -> Iterator[tuple[PluginRecord, list[Any]]]:
        """Call a registration hook on each plugin alone; a raising plugin fails alone."""
        by_name = {r.name: r for r in self.records}
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            record = by_name[self.pm.get_name(impl.plugin) or ""]
            registered: list[Any] = []
            kwargs = {"register": registered.append}
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as exc:  # a plugin's hook may raise anything; record it, go on
                record.fail(f"{hook_name} raised {type(exc).__name__}: {exc}")
                continue
            yield record, registered

    def failed(self) -> list[PluginRecord]:
        return [r for r in self.records if r.status is PluginStatus.FAILED]

    def check_required(self, requirements: Iterable[str]) -> list[str]:
        """Problems with the config's ``required_plugins`` (PEP 508 specifiers), if any."""
        problems = []
        for text in requirements:
            requirement = Requirement(text)
            wanted = _canonical(requirement.name)
            found = [
                r
                for r in self.records
                if wanted in {_canonical(r.name), _canonical(r.distribution or "")}
            ]
            if not found:
                problems.append(f"required plugin {text!r} is not installed")
                continue
            record = found[0]
            version = record.version
            if record.status is not PluginStatus.OK:
                problems.append(f"required plugin {text!r} is {record.status}: {record.error}")
            elif version and not requirement.specifier.contains(version, prereleases=True):
                problems.append(f"required plugin {text!r} is installed at version {version}")
        return problems


def _hookspec_names() -> list[str]:
    return [name for name, value in inspect.getmembers(Hooks) if hasattr(value, f"{PROJECT}_spec")]


def _hookimpl_names(plugin: object) -> list[str]:
    names = []
    for name in dir(plugin):
        try:
            value = getattr(plugin, name)
        except Exception:  # a property of a plugin object may raise; it is no hook then
            continue
        if hasattr(value, f"{PROJECT}_impl"):
            names.append(name)
    return names


def _is_registered(pm: pluggy.PluginManager, name: str) -> bool:
    return pm.get_plugin(name) is not None


def _core_incompatibility(dist: metadata.Distribution | None) -> str | None:
    """Why this core version is outside the plugin's declared ``ipunkt`` range, if it is."""
    if dist is None:
        return None
    for text in dist.requires or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if _canonical(requirement.name) != PROJECT or requirement.marker is not None:
            continue
        if not requirement.specifier.contains(Version(__version__), prereleases=True):
            return (
                f"supports ipunkt {requirement.specifier}, but this is ipunkt {__version__}"
            )
    return None


def load_plugins(allow: Iterable[str] = (), disable: Iterable[str] = ()) -> PluginHost:
    """Discover and load every installed plugin, honouring the allow and deny lists."""
    host = PluginHost()
    host.load(PluginSelection.from_env(allow, disable))
    return host

