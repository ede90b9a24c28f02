"""The `[channels.dpv]` section of the ipunkt config."""

from __future__ import annotations

from typing import Literal

from ipunkt.plugin import ChannelConfig
from pydantic import Field

NotificationChannel = Literal["Email", "Sms", "EmailAndSms"]


class DPVConfig(ChannelConfig):
    correspondence_url: str = "https://test.eformidling.no/altinn-proxy/correspondence/api/v1"
    """Base URL of the Altinn 3 correspondence API. Digdir's eFormidling proxy by default, as
    the original uses: it accepts the `eformidling:dpv` scope and calls Altinn itself."""
    health_url: str | None = "https://platform.tt02.altinn.no/health-probe"
    """Checked by the health endpoint; unset to report the channel healthy without a check."""
    scopes: list[str] = Field(default_factory=lambda: ["eformidling:dpv"])
    """Maskinporten scopes of the token sent to the correspondence API."""
    altinn_token_exchange: bool = True
    """Exchange the Maskinporten token for an Altinn token, as the original does."""
    default_resource: str = "eformidling-dpv-administrasjon"
    """The Altinn resource used when the receiver's service record names none."""
    sensitive_resource: str = "eformidling-dpv-taushetsbelagt"
    """The confidential resource: always used for the taushetsbelagt process, and the
    correspondence is then marked confidential."""
    sender_name: str | None = Field(None, max_length=256)
    """Shown as the sender in the inbox and put into notification texts ($reporterName$);
    the organisation number is used when unset."""
    notification_text: str = (
        "$correspondenceRecipientName$: Du har mottatt en melding fra $reporterName$."
    )
    """The e-mail and SMS text of the notification (SMS is cut to 160 characters)."""
    sensitive_notification_text: str = (
        "$correspondenceRecipientName$, har mottatt en taushetsbelagt melding fra $reporterName$."
        " For å få tilgang til meldingen, er det nødvendig at noen i"
        " $correspondenceRecipientName$ har fått tildelt tilgang til tjenesten"
        " «eformidling-dpv-taushetsbelagt» i Altinn. Dersom dere er usikre på om noen har slik"
        " tilgang, anbefaler vi sterkt at dette sjekkes. Les mer om å gi tilgang til tjenester på"
        " Altinns nettsider."
    )
    """The notification text for the taushetsbelagt process."""
    email_subject: str = Field("Melding mottatt i Altinn", max_length=128)
    """The subject of notification e-mails."""
    notification_channel: NotificationChannel = "EmailAndSms"
    """How recipients are notified, unless a message's `dpv.varselTransportType` says."""
    days_to_reply: int = Field(7, ge=0)
    """Days until the correspondence's due date, when due dates are on."""
    enable_due_date: bool = True
    """Whether correspondences get a due date (a message's `dpv.dagerTilSvarfrist` wins)."""
    generate_arkivmelding_receipts: bool = False
    """Make an arkivmelding_kvittering (OK, from the receiver) for the fagsystem when an
    arkivmelding reaches LEVERT, as the original does unless in production."""
    status_poll_interval: float = Field(60.0, gt=0)
    """Seconds between status polls of the correspondences (the original: every minute)."""
    request_timeout: float = Field(60.0, gt=0)
    """Seconds to wait for Altinn's answer; an upload may take longer while its bytes move,
    but fails when they stand still this long."""
