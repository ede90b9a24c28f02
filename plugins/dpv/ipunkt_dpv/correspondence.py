"""The upload form of one correspondence, made from an outgoing message as the original does.

Altinn binds the multipart form onto its ``InitializeCorrespondencesExt`` model, so the fields
are that model flattened with dots and indices (``Correspondence.Content.Attachments[0].fileName``),
named exactly as the published spec names them. What goes in each field follows Digdir's
integration point (altinn-v3-client ``CorrespondenceFactory`` and ``NotificationFactory``):
title, summary and body from the journalpost or the ``digital_dpv`` body, notification texts
from the message's ``dpv`` settings or the config, a due date, the recipient's URN, and the
messageId as both ``sendersReference`` and ``idempotentKey``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ipunkt.plugin import Attachment, OutgoingMessage, PermanentError

from ipunkt_dpv.arkivmelding import FILENAME, ArkivmeldingError, parse_journalpost, read_bounded
from ipunkt_dpv.config import DPVConfig, NotificationChannel

ARKIVMELDING = "arkivmelding"
DIGITAL_DPV = "digital_dpv"
TAUSHETSBELAGT = "urn:no:difi:profile:arkivmelding:taushetsbelagt:ver1.0"
DIGITALPOST_INFO = "urn:no:difi:profile:digitalpost:info:ver1.0"
NO_CONTENT = "Ingen innhold"
"""The body the original gives a digital_dpv message whose ``innhold`` is blank."""

SMS_MAX = 160
EMAIL_BODY_MAX = 1024
NOTIFICATION_DELAY = timedelta(minutes=5)

_TRANSPORTS: dict[str, NotificationChannel] = {
    "Epost": "Email", "SMS": "Sms", "EpostOgSMS": "EmailAndSms",
}
_ICD = re.compile(r"\d{4}")


@dataclass(frozen=True)
class Party:
    """An organisation (9 digits, maybe with a part organisation) or a person (11 digits)."""

    number: str
    part: str | None = None

    @property
    def is_person(self) -> bool:
        return len(self.number) == 11

    @property
    def urn(self) -> str:
        kind = "person" if self.is_person else "organization"
        return f"urn:altinn:{kind}:identifier-no:{self.number}"


@dataclass(frozen=True)
class Upload:
    """Everything one ``POST /correspondence/upload`` carries."""

    fields: tuple[tuple[str, str], ...]
    files: tuple[Attachment, ...]
    resource: str
    """The Altinn resource: the 409 look-up filters on it."""


def parse_party(identifier: str) -> Party:
    """``0192:910077473``, ``0192:910077473:974720760``, ``910077473`` or ``17912099997``."""
    parts = identifier.strip().split(":")
    if len(parts) >= 2 and _ICD.fullmatch(parts[0]):
        parts = parts[1:]
    number, part = parts[0], (parts[1] if len(parts) > 1 and parts[1] else None)
    if not (number.isdigit() and len(number) in (9, 11)) or (len(number) == 11 and part):
        raise PermanentError(
            f"{identifier!r} is neither an organisation number nor a national identity number"
        )
    return Party(number, part)


def message_type(message: OutgoingMessage) -> str:
    """The business message's type: the SBD header's, else the tail of ``document_type``."""
    header = message.sbd.get("standardBusinessDocumentHeader") or {}
    kind = (header.get("documentIdentification") or {}).get("type")
    return str(kind or message.document_type.rpartition("::")[2])


async def build_upload(
    message: OutgoingMessage, config: DPVConfig, *, organisation: str, now: datetime
) -> Upload:
    """The form for ``message``; raises :class:`PermanentError` when it cannot be made."""
    kind = message_type(message)
    if kind not in (ARKIVMELDING, DIGITAL_DPV):
        raise PermanentError(f"DPV carries arkivmelding and digital_dpv, not {kind!r}")
    try:
        uuid.UUID(message.message_id)
    except ValueError:
        raise PermanentError(
            f"messageId {message.message_id!r} is not a UUID, which Altinn's idempotentKey must be"
        ) from None
    business = message.sbd.get(kind)
    if not isinstance(business, Mapping):
        raise PermanentError(f"the SBD has no {kind!r} business message")
    settings = business.get("dpv")
    dpv: Mapping[str, Any] = settings if isinstance(settings, Mapping) else {}
    sender = parse_party(message.sender or organisation)
    receiver = parse_party(message.receiver)
    resource = _resource(message, config)
    confidential = resource == config.sensitive_resource

    if kind == ARKIVMELDING:
        title, summary, body, files = await _from_arkivmelding(message.attachments)
    else:
        title, summary, body, files = _from_digital_dpv(business, message.attachments)

    sender_name = config.sender_name or sender.number
    fields: list[tuple[str, str]] = [
        ("Correspondence.ResourceId", resource),
        ("Correspondence.Sender", f"0192:{sender.number}"),
        ("Correspondence.SendersReference", message.message_id),
    ]
    if config.sender_name:
        fields.append(("Correspondence.MessageSender", config.sender_name))
    fields += [
        ("Correspondence.Content.Language", "nb"),
        ("Correspondence.Content.MessageTitle", title),
        ("Correspondence.Content.MessageSummary", summary),
        ("Correspondence.Content.MessageBody", body),
    ]
    for index, (attachment, display_name) in enumerate(files):
        prefix = f"Correspondence.Content.Attachments[{index}]"
        fields.append((f"{prefix}.fileName", attachment.filename))
        if display_name:
            fields.append((f"{prefix}.displayName", display_name))
        fields += [
            (f"{prefix}.isEncrypted", "false"),
            (f"{prefix}.sendersReference", attachment.filename),
            (f"{prefix}.dataLocationType", "NewCorrespondenceAttachment"),
        ]
    fields.append(("Correspondence.RequestedPublishTime", _timestamp(now)))
    due = _due_date(dpv, config, now)
    if due is not None:
        fields.append(("Correspondence.DueDateTime", _timestamp(due)))
    fields.append(("Correspondence.PropertyList.senderOrgNumber", sender.part or sender.number))
    fields += _notification(dpv, config, confidential, sender_name, now)
    fields += [
        ("Correspondence.IgnoreReservation",
         _bool(kind == DIGITAL_DPV and message.process == DIGITALPOST_INFO)),
        ("Correspondence.IsConfirmationNeeded", "false"),
        ("Correspondence.IsConfidential", _bool(confidential)),
        ("Recipients[0]", receiver.urn),
        ("IdempotentKey", message.message_id),
    ]
    return Upload(tuple(fields), tuple(a for a, _ in files), resource)


def _resource(message: OutgoingMessage, config: DPVConfig) -> str:
    """The receiver's Altinn resource; the confidential one for the taushetsbelagt process,
    whatever the record says, so that confidential content never lands in an open inbox."""
    if message.process == TAUSHETSBELAGT:
        return config.sensitive_resource
    service = (message.service_record or {}).get("service") or {}
    resource = service.get("resource") if isinstance(service, Mapping) else None
    return str(resource).strip() if resource and str(resource).strip() else config.default_resource


async def _from_arkivmelding(
    attachments: Sequence[Attachment],
) -> tuple[str, str, str, list[tuple[Attachment, str | None]]]:
    by_name = {a.filename: a for a in attachments}
    source = by_name.get(FILENAME)
    if source is None:
        raise PermanentError(f"an arkivmelding for DPV needs the file {FILENAME}")
    try:
        journalpost = parse_journalpost(await read_bounded(source.open()))
    except ArkivmeldingError as exc:
        raise PermanentError(str(exc)) from exc
    files: list[tuple[Attachment, str | None]] = []
    seen: set[str] = set()
    for document in journalpost.documents:
        if document.filename in seen:
            continue
        attachment = by_name.get(document.filename)
        if attachment is None:
            raise PermanentError(
                f"{FILENAME} names the file {document.filename!r}, which the message lacks"
            )
        seen.add(document.filename)
        files.append((attachment, attachment.title or document.title))
    return journalpost.title, journalpost.title, journalpost.body, files


def _from_digital_dpv(
    business: Mapping[str, Any], attachments: Sequence[Attachment]
) -> tuple[str, str, str, list[tuple[Attachment, str | None]]]:
    title, summary = business.get("tittel"), business.get("sammendrag")
    if not isinstance(title, str) or not title.strip():
        raise PermanentError("a digital_dpv message needs a tittel")
    if not isinstance(summary, str) or not summary.strip():
        raise PermanentError("a digital_dpv message needs a sammendrag")
    content = business.get("innhold")
    body = content if isinstance(content, str) and content.strip() else NO_CONTENT
    return title, summary, body, [(a, a.title) for a in attachments]


def _due_date(dpv: Mapping[str, Any], config: DPVConfig, now: datetime) -> datetime | None:
    """The message's ``dagerTilSvarfrist`` wins (0 means none); else the config's."""
    days = dpv.get("dagerTilSvarfrist")
    if isinstance(days, int) and not isinstance(days, bool):
        return now + timedelta(days=days) if days > 0 else None
    return now + timedelta(days=config.days_to_reply) if config.enable_due_date else None


def _notification(
    dpv: Mapping[str, Any], config: DPVConfig, confidential: bool, sender_name: str,
    now: datetime,
) -> list[tuple[str, str]]:
    own = dpv.get("taushetsbelagtVarselTekst" if confidential else "varselTekst")
    default = config.sensitive_notification_text if confidential else config.notification_text
    text = (own if isinstance(own, str) and own else default).replace("$reporterName$",
                                                                       sender_name)
    channel = _TRANSPORTS.get(str(dpv.get("varselTransportType")), config.notification_channel)
    email, sms = _fit(text, EMAIL_BODY_MAX), _fit(text, SMS_MAX)
    prefix = "Correspondence.Notification"
    fields = [
        (f"{prefix}.NotificationTemplate", "CustomMessage"),
        (f"{prefix}.EmailSubject", config.email_subject),
        (f"{prefix}.EmailBody", email),
        (f"{prefix}.EmailContentType", "Plain"),
        (f"{prefix}.SmsBody", sms),
    ]
    reminder = dpv.get("varselType") in (None, "VarselDPVMedRevarsel")
    fields.append((f"{prefix}.SendReminder", _bool(reminder)))
    if reminder:
        fields += [
            (f"{prefix}.ReminderEmailSubject", config.email_subject),
            (f"{prefix}.ReminderEmailBody", email),
            (f"{prefix}.ReminderEmailContentType", "Plain"),
            (f"{prefix}.ReminderSmsBody", sms),
            (f"{prefix}.ReminderNotificationChannel", channel),
        ]
    fields += [
        (f"{prefix}.NotificationChannel", channel),
        (f"{prefix}.RequestedSendTime", _timestamp(now + NOTIFICATION_DELAY)),
    ]
    return fields


def _fit(text: str, limit: int) -> str:
    """Altinn refuses longer notification texts: cut them, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _bool(value: bool) -> str:
    return "true" if value else "false"
