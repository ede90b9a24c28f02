"""The `[channels.dpi]` section of the ipunkt config."""

from __future__ import annotations

from pathlib import Path

from ipunkt.plugin import ChannelConfig
from pydantic import Field, field_validator, model_validator

MIB = 1024 * 1024
KANAL_PATTERN = r"^[A-Za-z0-9_.-]{1,30}$"
"""The access point's documentation says at most 28 characters, but the original's default,
``no_difi_move_integrasjonspunkt``, has 30 and is what access points see in practice."""


def normalise_kanal(kanal: str) -> str:
    """The access point allows ``[A-Za-z0-9_-]``; the original turns its mpcId's dots into
    underscores (``no.difi.move.integrasjonspunkt`` -> ``no_difi_move_integrasjonspunkt``)."""
    return kanal.replace(".", "_")


class DPIConfig(ChannelConfig):
    access_point_url: str = "https://qa.meldingsformidler.digdir.no/api/v2/dpi"
    """Base URL of the DPI access point (corner 2)."""
    kanal: str | None = Field(default="no_difi_move_integrasjonspunkt", pattern=KANAL_PATTERN)
    """Receipt channel (MPC): keeps several integration points of one organisation apart.
    Letters, digits, _ and - (dots become _); the original's default. Unset: sent without a
    kanal, and receipts of every kanal are fetched."""
    receipt_poll_interval: float = Field(default=10.0, gt=0)
    """Seconds between fetches of statuses and receipts."""
    page_size: int = Field(default=100, ge=1, le=1000)
    """Receipts fetched per poll."""
    avsenderidentifikatorer: tuple[str, ...] = ()
    """Sender identifiers (avsenderidentifikator) whose receipts are fetched on their own."""
    poll_without_avsenderidentifikator: bool = True
    """Also fetch receipts without naming a sender identifier (the original's default)."""
    unmatched_receipt_hours: float = Field(default=24.0, ge=0)
    """How long a receipt whose conversation no status poll asks about waits unread before it
    is dropped (longer than the core's longest status poll interval)."""
    language: str = Field(default="NO", min_length=2, max_length=2)
    """Language (ISO 639-1) of titles when neither the message nor the receiver says."""
    trust_anchors: tuple[Path, ...] = ()
    """PEM files of the CAs that issue the certificates receipts are signed with (Buypass,
    Commfides). Required: a receipt whose signer does not chain to one is refused."""
    upload_size_limit: int = Field(default=50 * MIB, gt=0)
    """The largest total size of one message's files, in bytes (the original's 50 MB)."""
    spool_directory: Path | None = None
    """Where sealed packages wait for upload (default: the system's temporary directory)."""
    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for a connection to the access point."""
    read_timeout: float = Field(default=60.0, gt=0)
    """Seconds the access point may stay silent during a request, or stop taking an upload's
    bytes, before the request counts as failed."""
    print_provider: str | None = Field(default=None, pattern=r"^\d{9}$")
    """The print provider's organisation number, for print messages without a receiver,
    which have no registry record (the original asks the contact register's print endpoint)."""
    print_certificate: Path | None = None
    """PEM file of the print provider's certificate; given together with print_provider."""

    @model_validator(mode="after")
    def _print_provider_whole(self) -> DPIConfig:
        if (self.print_provider is None) != (self.print_certificate is None):
            raise ValueError("give print_provider and print_certificate together")
        return self

    @field_validator("kanal")
    @classmethod
    def _normalise(cls, value: str | None) -> str | None:
        return None if value is None else normalise_kanal(value)
