"""Receipts from the access point's inbox, believed only once their signature checks out.

A receipt is a compact JWS (RS256, ``x5c``) whose payload is a receipt SBD. It is verified in
this order, and refused at the first failure: the signer's certificate chains to a trust anchor
and may sign; the signature verifies with it; the payload reads as a DPI receipt and keeps its
published schema's rules. Then it maps to a status as the original maps it
(``MessageStatusMapper``); the access point's own statuses map here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography import x509
from ipunkt.package import jws
from ipunkt.package.errors import SignatureInvalid
from ipunkt.package.trust import TrustStore
from ipunkt.plugin import ReceiptStatus
from pydantic import ValidationError

from ipunkt_dpi.business_messages import (
    Feil,
    Kvittering,
    NotAReceipt,
    Varslingfeiletkvittering,
    read_receipt,
)

RECEIPT_STATUSES: dict[str, tuple[ReceiptStatus, str]] = {
    "leveringskvittering": (
        ReceiptStatus.LEVERT,
        "Kvittering på at digital post er tilgjengeliggjort eller at fysisk post er klargjort "
        "for utskrift",
    ),
    "mottakskvittering": (
        ReceiptStatus.LEVERT,
        "Kvittering fra utskrift og forsendelsestjenesten om at melding er mottatt og lagt til "
        "print",
    ),
    "aapningskvittering": (
        ReceiptStatus.LEST,
        "Kvittering fra Innbygger for at digital post er åpnet",
    ),
    "varslingfeiletkvittering": (
        ReceiptStatus.FEIL,
        "Kvittering for at en spesifisert varsling ikke har blitt sendt",
    ),
    "returpostkvittering": (
        ReceiptStatus.FEIL,
        "Kvittering fra utskrift og forsendelsestjenesten om at posten ikke har blitt levert til "
        "Mottaker.",
    ),
    "feil": (ReceiptStatus.FEIL, "Generell melding om at det har skjedd en feil"),
}

ACCESS_POINT_STATUSES: dict[str, tuple[ReceiptStatus, str]] = {
    "OPPRETTET": (ReceiptStatus.SENDT, "Hjørne 2 har mottatt meldingen"),
    "SENDT": (ReceiptStatus.MOTTATT, "Hjørne 3 har mottatt meldingen"),
    "FEILET": (ReceiptStatus.FEIL, "Generell melding om at det har skjedd en feil"),
}
"""The statuses of ``GET /messages/out/{id}/statuses``: OPPRETTET means the access point has
the message (SENDT for us), SENDT that the receiver's access point has it (MOTTATT)."""


class ReceiptRefused(Exception):
    """A receipt that is not believed: bad signature, untrusted signer, or not a receipt."""


@dataclass(frozen=True)
class Receipt:
    """A verified receipt."""

    message_id: str
    """The receipt's own id (its SBD instanceIdentifier): what is marked read."""
    conversation_id: str
    kind: str
    body: Kvittering
    signer: x509.Certificate
    raw: str
    """The receipt SBD as JSON, kept as the status's raw receipt."""

    @property
    def status(self) -> ReceiptStatus:
        return RECEIPT_STATUSES[self.kind][0]

    @property
    def description(self) -> str:
        text = RECEIPT_STATUSES[self.kind][1]
        if isinstance(self.body, Feil):
            text = f"{text} ({self.body.feiltype})"
            if self.body.detaljer:
                text = f"{text}: {self.body.detaljer}"
        elif isinstance(self.body, Varslingfeiletkvittering):
            text = f"{text} ({self.body.varslingskanal})"
            if self.body.beskrivelse:
                text = f"{text}: {self.body.beskrivelse}"
        return text


def open_receipt(token: str, trust: TrustStore) -> Receipt:
    """Verify and read one receipt JWS; raises :class:`ReceiptRefused` saying why not."""
    try:
        verified = jws.verify(token, trust=trust)
        payload = verified.json()
    except SignatureInvalid as exc:
        raise ReceiptRefused(str(exc)) from exc
    assert verified.certificate is not None
    try:
        header, kind, body = read_receipt(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ReceiptRefused(f"the receipt breaks its schema: {problems}") from exc
    except NotAReceipt as exc:
        raise ReceiptRefused(str(exc)) from exc
    conversation_id = header.conversation_id
    if conversation_id is None:
        raise ReceiptRefused("the receipt has no ConversationId scope")
    return Receipt(
        header.message_id,
        conversation_id,
        kind,
        body,
        verified.certificate,
        json.dumps(payload, ensure_ascii=False),
    )
