"""The `[channels.dpf]` section of the ipunkt config."""

from __future__ import annotations

from typing import Annotated

from ipunkt.plugin import ChannelConfig
from pydantic import Field, SecretStr

MIB = 1024 * 1024
OrganisationNumber = Annotated[str, Field(pattern=r"^\d{9}$")]
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
ARKIVMELDING_PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"


class DPFConfig(ChannelConfig):
    svarut_url: str = "https://test.svarut.ks.no"
    """Base URL of SvarUt (production: https://svarut.ks.no); the REST API is under /api."""
    svarinn_url: str | None = None
    """Base URL of SvarInn; default: the SvarUt URL followed by /tjenester/svarinn."""
    account_id: str | None = Field(None, pattern=UUID_PATTERN)
    """The SvarUt account (kontoId, a UUID) that forsendelser are sent from."""
    integration_id: str | None = Field(None, pattern=UUID_PATTERN)
    """The Fiks IntegrasjonId (a UUID) that may use the account."""
    integration_password: SecretStr | None = None
    """The Fiks IntegrasjonPassord."""
    receive: bool = True
    """Whether to fetch incoming forsendelser from SvarInn."""
    svarinn_username: str | None = None
    """The SvarInn mottakersystem's user name (HTTP Basic)."""
    svarinn_password: SecretStr | None = None
    """The SvarInn mottakersystem's service password."""
    poll_interval: float = Field(900.0, gt=0)
    """Seconds between polls of SvarInn (the original polls every 15 minutes)."""
    status_poll_interval: float = Field(60.0, gt=0)
    """Seconds between status searches in SvarUt."""
    status_batch_size: int = Field(100, ge=1, le=1000)
    """How many forsendelser one status search asks about."""
    generate_arkivmelding_receipts: bool = False
    """Make an arkivmelding_kvittering when a message reaches LEST, as the original can."""
    konteringskode: str | None = Field(None, pattern=r"^[a-zA-Z0-9_\-.øæåØÆÅ]{1,20}$")
    """SvarUt's billing code, to group message statistics."""
    digital_only: bool = False
    """Never print (kunDigitalLevering): no delivery guarantee, but any file type may be sent."""
    printable_limit: int = Field(350 * MIB, gt=0)
    """The largest total size of a forsendelse that may go to print (SvarUt's 350 MB)."""
    incoming_process: str = ARKIVMELDING_PROCESS
    """The process given to incoming forsendelser, which SvarInn does not carry."""
    incoming_ttl_hours: int = Field(24, ge=1)
    """The lifetime given to incoming forsendelser (expectedResponseDateTime)."""
    fallback_sender: OrganisationNumber | None = None
    """The sender given to incoming forsendelser whose reply address has no organisation number
    (eDialog from a citizen); without it such forsendelser are refused back to SvarUt."""
    work_dir: str | None = None
    """Where incoming packages are sealed before they are stored; default: the system's temp."""
    connect_timeout: float = Field(5.0, gt=0)
    """Seconds to wait for a connection to SvarUt or SvarInn."""
    request_timeout: float = Field(60.0, gt=0)
    """Seconds SvarUt or SvarInn may stay silent during a request, or stop taking a send's
    bytes, before the request counts as failed."""

    @property
    def svarinn_base(self) -> str:
        return (self.svarinn_url or f"{self.svarut_url.rstrip('/')}/tjenester/svarinn").rstrip("/")
