"""The `[channels.dpv]` section of the ipunkt config."""

from __future__ import annotations

from ipunkt.plugin import ChannelConfig
from pydantic import Field


class DPVConfig(ChannelConfig):
    correspondence_url: str = "https://platform.tt02.altinn.no/correspondence/api/v1"
    """Base URL of the Altinn 3 correspondence API."""
    notification_text: str = "Du har mottatt en melding fra $reporteeName$."
    """The notification sent with each correspondence."""
    sensitive_notification_text: str = "Du har mottatt en melding med taushetsbelagt innhold."
    """The notification sent for the taushetsbelagt process."""
    days_to_reply: int = Field(7, ge=0)
    """Days until the correspondence's due date, when due dates are on."""
    enable_due_date: bool = True
    """Whether correspondences get a due date."""
    generate_arkivmelding_receipts: bool = False
    """Make an arkivmelding_kvittering when a message reaches LEVERT, as the original can."""
