"""The `[channels.dpf]` section of the ipunkt config."""

from __future__ import annotations

from ipunkt.plugin import ChannelConfig
from pydantic import Field, SecretStr


class DPFConfig(ChannelConfig):
    svarut_url: str = "https://test.svarut.ks.no"
    """Base URL of SvarUt (sending) and SvarInn (receiving)."""
    integration_id: str | None = None
    """The Fiks IntegrasjonId."""
    integration_password: SecretStr | None = None
    """The Fiks IntegrasjonPassord."""
    receive: bool = True
    """Whether to fetch incoming forsendelser from SvarInn."""
    poll_interval: float = Field(900.0, gt=0)
    """Seconds between polls of SvarInn."""
