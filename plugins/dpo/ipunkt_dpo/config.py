"""The `[channels.dpo]` section of the ipunkt config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from ipunkt.plugin import ChannelConfig
from pydantic import Field

GIB = 1024 * 1024 * 1024
OrganisationNumber = Annotated[str, Field(pattern=r"^\d{9}$")]


class DPOConfig(ChannelConfig):
    broker_url: str = "https://platform.tt02.altinn.no/broker/api/v1"
    """Base URL of the Altinn 3 broker API (production: https://platform.altinn.no/broker/api/v1)."""
    resource: str = "eformidling-dpo-meldingsutveksling"
    """The Altinn resource that DPO file transfers use."""
    message_channel: str | None = Field(None, max_length=25, pattern=r"^[A-Za-z0-9_-]+$")
    """Lets several integration points share one organisation: each takes only its channel."""
    reportees: tuple[OrganisationNumber, ...] = ()
    """Organisations (9 digits) this integration point sends and receives on behalf of; each
    needs its own Altinn system user."""
    poll_interval: float = Field(15.0, gt=0)
    """Seconds between polls of the broker for incoming files."""
    unconfirmed_sweep_interval: float = Field(300.0, gt=0)
    """Seconds between looks for files whose download started but was never confirmed (the
    store failed, or the process died between download and confirmation); also done at start."""
    upload_size_limit: int = Field(GIB, gt=0)
    """The largest total size of one message's files, in bytes (the original's 1 GB)."""
    incoming_size_limit: int = Field(2 * GIB, gt=0)
    """The largest file taken from the broker, in bytes, and the most its entries, or its
    package's files, may unpack to; a larger one is refused."""
    max_compression_ratio: int = Field(100, ge=1)
    """Unpacked bytes per packed byte beyond which an incoming file or package is refused as a
    zip bomb (checked once 16 MiB are unpacked)."""
    package_max_entries: int = Field(1000, ge=1)
    """The most files an incoming package may hold."""
    trust_anchors: tuple[Path, ...] = ()
    """PEM files of the CAs whose certificates may sign incoming packages (Buypass, Commfides).
    Without them a package's signature is still checked, but not who signed it."""
    connect_timeout: float = Field(3.0, gt=0)
    """Seconds to wait for a connection to the broker."""
    request_timeout: float = Field(30.0, gt=0)
    """Seconds the broker may stay silent during a request, or stop taking an upload's bytes,
    before the request counts as failed."""
