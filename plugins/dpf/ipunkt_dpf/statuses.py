"""SvarUt's forsendelse statuses as the integration point's receipt statuses.

SvarUt guarantees delivery once it has accepted a forsendelse (by Altinn, a digital mailbox or
print), so SENDT and LEVERT are registered at send, as the original does. After that only the
end of the road matters: LEST when the receiver has read or imported it, FEIL when SvarUt could
not take it (AVVIST, FEILET_UNDER_MOTTAK) or could not deliver it (IKKE_LEVERT). SLETTET means
SvarUt no longer has it: nothing more will come. Every other status is a step on the way.
"""

from __future__ import annotations

import json

from ipunkt.plugin import ReceiptStatus, StatusUpdate

from ipunkt_dpf.client import ForsendelseStatus, Hendelse

FAILED = {
    "AVVIST": "SvarUt refused the forsendelse",
    "FEILET_UNDER_MOTTAK": "the forsendelse failed while it was being received",
    "IKKE_LEVERT": "SvarUt could not deliver the forsendelse",
}
READ = "LEST"
GONE = "SLETTET"
NO_FORSENDELSE = "forsendelseId finnes ikke i SvarUt."
"""The original's description when SvarUt has no forsendelse for the message."""


def needs_reason(status: str) -> bool:
    """Whether SvarUt's event history should be read for the reason of this status."""
    return status in FAILED


def _reason(event: Hendelse | None) -> str:
    if event is None or not event.hendelse:
        return ""
    return f": {event.hendelse}" + (f" ({event.tidspunkt})" if event.tidspunkt else "")


def update_for(
    message_id: str,
    status: ForsendelseStatus,
    already: tuple[ReceiptStatus, ...],
    event: Hendelse | None = None,
) -> StatusUpdate | None:
    """The update this SvarUt status means for a conversation, or None when there is none."""
    raw = json.dumps(status.raw, ensure_ascii=False)
    if status.status == READ:
        if ReceiptStatus.LEST in already:
            return None
        return StatusUpdate(message_id, ReceiptStatus.LEST, raw_receipt=raw, stop_polling=True)
    if status.status in FAILED:
        if ReceiptStatus.FEIL in already:
            return None
        description = f"{FAILED[status.status]} ({status.status}){_reason(event)}"
        return StatusUpdate(
            message_id, ReceiptStatus.FEIL, description, raw_receipt=raw, stop_polling=True
        )
    if status.status == GONE:
        return StatusUpdate(
            message_id,
            ReceiptStatus.ANNET,
            "SvarUt has deleted the forsendelse (SLETTET); polling stops",
            raw_receipt=raw,
            stop_polling=True,
        )
    return None


def missing(message_id: str) -> StatusUpdate:
    """SvarUt knows no forsendelse for the message: FEIL, as the original registers."""
    return StatusUpdate(message_id, ReceiptStatus.FEIL, NO_FORSENDELSE, stop_polling=True)
