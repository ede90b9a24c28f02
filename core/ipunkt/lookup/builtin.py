"""The core's own lookup sources, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Callable

from ipunkt.lookup.registry import LocalRegistry, LocalRegistryConfig
from ipunkt.lookup.service_registry import ServiceRegistryClient, ServiceRegistryConfig
from ipunkt.plugin import LookupSourceInfo, hookimpl


@hookimpl
def register_lookup_sources(register: Callable[[LookupSourceInfo], None]) -> None:
    register(
        LookupSourceInfo(
            name=LocalRegistry.name,
            description="receivers listed in a local TOML registry file",
            factory=LocalRegistry.from_context,
            config_schema=LocalRegistryConfig,
        )
    )
    register(
        LookupSourceInfo(
            name=ServiceRegistryClient.name,
            description="the eFormidling Service Registry (adressetjenesten) over HTTP",
            factory=ServiceRegistryClient.from_context,
            config_schema=ServiceRegistryConfig,
        )
    )
