"""The `[channels.dpo]` section of the ipunkt config."""

from __future__ import annotations

from ipunkt.plugin import ChannelConfig
from pydantic import Field


class DPOConfig(ChannelConfig):
    broker_url: str = "https://platform.tt02.altinn.no/broker/api/v1"
    """Base URL of the Altinn 3 broker API."""
    resource: str = "eformidling-dpo-meldingsutveksling"
    """The Altinn resource that DPO file transfers use."""
    message_channel: str | None = Field(None, max_length=25, pattern=r"^[A-Za-z0-9_-]+$")
    """Lets several integration points share one organisation: each takes only its channel."""
    reportees: tuple[str, ...] = ()
    """Organisations (9 digits) this integration point sends and receives on behalf of."""
    poll_interval: float = Field(15.0, gt=0)
    """Seconds between polls of the broker for incoming files."""
