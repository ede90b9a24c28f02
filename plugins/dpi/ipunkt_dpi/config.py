"""The `[channels.dpi]` section of the ipunkt config."""

from __future__ import annotations

from ipunkt.plugin import ChannelConfig
from pydantic import Field


class DPIConfig(ChannelConfig):
    access_point_url: str = "https://qa.meldingsformidler.digdir.no/api/v2/dpi"
    """Base URL of the DPI access point (corner 2)."""
    kanal: str | None = Field(None, max_length=25, pattern=r"^[A-Za-z0-9_.-]+$")
    """Receipt channel: keeps several integration points of one organisation apart."""
    receipt_poll_interval: float = Field(10.0, gt=0)
    """Seconds between fetches of receipts."""
