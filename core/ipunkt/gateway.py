"""Assemble a gateway from its config: settings, loaded plugins, validated channel sections.

Shared by ``ipunkt serve`` and the other commands, so that each sees the same plugins the
server would run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from ipunkt.config import (
    ConfigError,
    OrganisationSettings,
    Settings,
    channel_configs,
    load_settings,
)
from ipunkt.lookup.assembly import available_sources, lookup_source_configs
from ipunkt.package.errors import CertificateProblem, KeyProblem
from ipunkt.package.keys import OrganisationKey, check_key, load_key
from ipunkt.package.trust import TrustStore
from ipunkt.plugin import ChannelConfig
from ipunkt.plugins import PluginHost, load_plugins

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Gateway:
    settings: Settings
    plugins: PluginHost
    channel_configs: dict[str, ChannelConfig]
    key: OrganisationKey | None = None
    """The organisation's key and certificate chain, checked, when the config names one."""


def load_gateway(path: Path) -> Gateway:
    """Load and check everything a start needs; ConfigError says what stops it."""
    settings = load_settings(path)
    plugins = load_plugins(settings.plugins.allow, settings.plugins.disable)
    problems = plugins.check_required(settings.plugins.required_plugins)
    if problems:
        raise ConfigError("\n".join(f"{path}: plugins.required_plugins: {p}" for p in problems))
    lookup_source_configs(settings.lookup, available_sources(plugins), plugins)
    key = organisation_key(settings.organisation, path.parent)
    return Gateway(settings, plugins, channel_configs(settings, plugins), key)


def organisation_key(
    organisation: OrganisationSettings, base: Path, *, at: datetime | None = None
) -> OrganisationKey | None:
    """Load and check the configured key: expiry, key usage and chain, with a clear error."""
    if organisation.key is None:
        return None
    password = organisation.key_password
    try:
        key = load_key(
            base / organisation.key,
            password=password.get_secret_value().encode() if password else None,
            certificate=base / organisation.certificate if organisation.certificate else None,
        )
        if key.organisation_number not in (None, organisation.number):
            raise KeyProblem(
                f"the certificate is for organisation {key.organisation_number}, not "
                f"{organisation.number}"
            )
        anchors = [base / anchor for anchor in organisation.trust_anchors]
        trust = TrustStore.load(*anchors) if anchors else None
        warnings = check_key(key, trust=trust, at=at)
    except (KeyProblem, CertificateProblem) as exc:
        raise ConfigError(f"organisation.key: {exc}") from None
    for warning in warnings:
        log.warning("organisation key", warning=warning)
    return key
