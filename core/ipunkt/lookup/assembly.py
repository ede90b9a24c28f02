"""Turn ``[lookup]`` and the registered sources into a running :class:`AddressBook`.

The source tables ``[lookup.<name>]`` are checked when the gateway loads, so that a typo stops
``ipunkt serve`` with the key's path, as the rest of the config does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from ipunkt.config import ConfigError, describe
from ipunkt.lookup import builtin
from ipunkt.lookup.address_book import AddressBook
from ipunkt.lookup.settings import LookupSettings
from ipunkt.lookup.source import LookupSourceConfig, LookupSourceContext, LookupSourceInfo
from ipunkt.plugin import TokenProvider
from ipunkt.plugins import PluginHost, PluginStatus


def available_sources(host: PluginHost) -> dict[str, LookupSourceInfo]:
    """The sources the plugins registered, and the core's own where a host lacks them.

    A host that loaded plugins has the core's sources from its default plugin; one built by
    hand (an embedding application, a test) gets them here, so that the defaults still work.
    """
    core: list[LookupSourceInfo] = []
    builtin.register_lookup_sources(core.append)
    return {**{info.name: info for info in core}, **host.lookup_sources}


def lookup_source_configs(
    settings: LookupSettings, sources: Mapping[str, LookupSourceInfo], host: PluginHost
) -> dict[str, LookupSourceConfig]:
    """Validate each listed source's ``[lookup.<name>]`` table with the source's schema."""
    errors = []
    installed = ", ".join(sorted(sources)) or "none"
    some_missing = any(r.status is not PluginStatus.OK for r in host.records)
    for name in settings.sources:
        if name not in sources:
            hint = " (a plugin that failed or is disabled may provide it)" if some_missing else ""
            errors.append(
                f"config: lookup.sources: no lookup source named {name!r} "
                f"(installed: {installed}){hint}"
            )
    configs: dict[str, LookupSourceConfig] = {}
    for name, table in settings.source_tables().items():
        info = sources.get(name)
        if info is None:
            errors.append(
                f"config: lookup.{name}: unknown key (not a setting of [lookup] and no lookup "
                f"source of that name; installed: {installed})"
            )
            continue
        if not isinstance(table, Mapping):
            errors.append(f"config: lookup.{name}: must be a table of that source's settings")
            continue
        try:
            configs[name] = info.config_schema.model_validate(table)
        except ValidationError as exc:
            errors.append(describe(exc, "config", ("lookup", name)))
    if errors:
        raise ConfigError("\n".join(errors))
    return {
        name: configs.get(name) or sources[name].config_schema() for name in settings.sources
    }


def build_address_book(
    settings: LookupSettings,
    host: PluginHost,
    *,
    organisation: str,
    services: Iterable[str] = (),
    tokens: TokenProvider | None = None,
) -> AddressBook:
    """The configured sources, created but not started (``await book.start()``)."""
    available = available_sources(host)
    configs = lookup_source_configs(settings, available, host)
    sources = []
    for name, config in configs.items():
        context = LookupSourceContext(
            organisation=organisation,
            config=config,
            services=frozenset(services),
            tokens=tokens,
        )
        source = available[name].factory(context)
        source.name = name
        sources.append(source)
    return AddressBook(sources)
