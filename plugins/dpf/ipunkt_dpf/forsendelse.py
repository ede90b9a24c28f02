"""From an outgoing message to SvarUt's ``OrganisasjonForsendelse``, checked as SvarUt checks it.

The fields follow the integrasjonspunkt's ``FiksRestMapper``: the title is the journalpost's
public title, ``eksternReferanse`` the messageId, ``svarPaForsendelseId`` the SBD's
``ReceiverRef`` scope, ``sikkerhetsniva`` HOYESTE for security level 4, the Noark metadata from
``arkivmelding.xml``, the documents those the journalpost names (the main document first).
SvarUt's own rules (file names, sizes, what can be printed) are checked here, before any byte
is sent, so that a message SvarUt would refuse fails at once with a reason a person can act on.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from ipunkt.plugin import Attachment, OutgoingMessage, PermanentError

from ipunkt_dpf.arkivmelding import FILENAME, Journalpost, Party
from ipunkt_dpf.config import DPFConfig

log = structlog.get_logger(__name__)

PDF = "application/pdf"
PDF_MAGIC = b"%PDF-"
FORBIDDEN_IN_FILENAME = frozenset('*:"\\/<>|?')
MAX_FILENAME = 226
MAX_TITLE = 1000
MAX_SHORT = 100
MAX_EXTRA_METADATA = 20
MAX_ADDRESS = 70
AVGIVENDE_SYSTEM = "ipunkt"


class ForsendelseRejected(PermanentError):
    """The message breaks one of SvarUt's rules; SvarUt would refuse it."""


@dataclass(frozen=True)
class PlannedDocument:
    """One document as it will be sent: which attachment, and whether it may be printed."""

    attachment: Attachment
    filename: str
    mime_type: str
    printable: bool


@dataclass(frozen=True)
class Plan:
    """The forsendelse JSON and its documents, in the order of ``dokumenter``."""

    forsendelse: dict[str, Any]
    documents: list[PlannedDocument]


def organisation_number(identifier: str) -> str:
    """``0192:910075918`` or ``910075918`` as the 9-digit organisation number."""
    value = identifier.strip()
    if ":" in value:
        icd, _, value = value.partition(":")
        if icd not in ("0192", "9908"):
            raise ForsendelseRejected(
                f"DPF sends to Norwegian organisations; {identifier!r} is not one"
            )
    if len(value) != 9 or not value.isdigit():
        raise ForsendelseRejected(f"{identifier!r} is not a 9-digit organisation number")
    return value


def _business(sbd: Mapping[str, Any]) -> Mapping[str, Any]:
    header = sbd.get("standardBusinessDocumentHeader") or {}
    kind = (header.get("documentIdentification") or {}).get("type")
    body = sbd.get(kind) if kind else None
    return body if isinstance(body, Mapping) else {}


def receiver_ref(sbd: Mapping[str, Any]) -> str | None:
    """The ``ReceiverRef`` scope: the SvarUt id of the forsendelse this one answers."""
    header = sbd.get("standardBusinessDocumentHeader") or {}
    for scope in (header.get("businessScope") or {}).get("scope") or []:
        if isinstance(scope, Mapping) and scope.get("type") == "ReceiverRef":
            value = scope.get("instanceIdentifier") or scope.get("identifier")
            if not value:
                continue
            try:
                return str(uuid.UUID(str(value)))
            except ValueError:
                log.warning("ReceiverRef is not a UUID, so not a SvarUt id; ignored", ref=value)
    return None


def security_level(sbd: Mapping[str, Any]) -> str:
    """SvarUt's ``sikkerhetsniva``: HOYESTE for security level 4, else BETYDELIG."""
    level = _business(sbd).get("sikkerhetsnivaa")
    return "HOYESTE" if str(level) == "4" else "BETYDELIG"


def forsendelse_type(sbd: Mapping[str, Any]) -> str | None:
    dpf = _business(sbd).get("dpf")
    value = dpf.get("forsendelseType") if isinstance(dpf, Mapping) else None
    text = str(value or "").strip()
    return text or None


def _limit(value: str, maximum: int, what: str) -> str:
    if not value:
        raise ForsendelseRejected(f"{what} is empty")
    if len(value) > maximum:
        raise ForsendelseRejected(
            f"{what} is {len(value)} characters; SvarUt takes at most {maximum}"
        )
    return value


def check_filename(name: str) -> None:
    """SvarUt's file-name rule: 1 to 226 characters, none of ``* : " \\ / < > | ?``."""
    _limit(name, MAX_FILENAME, f"the file name {name[:60]!r}")
    bad = sorted(FORBIDDEN_IN_FILENAME.intersection(name))
    if bad:
        raise ForsendelseRejected(
            f"the file name {name!r} contains {' '.join(bad)}; SvarUt refuses "
            '* : " \\ / < > | ? in file names'
        )


def _address(party: Party | None) -> dict[str, str] | None:
    """SvarUt's ``Adresse`` (adresselinje1 and poststed required), when the party has one."""
    if party is None or not party.address_lines or not party.postal_area:
        return None
    address = {"adresselinje1": party.address_lines[0]}
    for index, line in enumerate(party.address_lines[1:3], start=2):
        address[f"adresselinje{index}"] = line
    if party.postal_code:
        address["postnummer"] = party.postal_code
    address["poststed"] = party.postal_area
    for key, value in address.items():
        _limit(value, 20 if key == "postnummer" else MAX_ADDRESS, f"the address field {key}")
    return address


def _metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    checked = dict(metadata)
    for key in ("mappeSystemId", "systemId", "registreringsId", "journalposttype",
                "journalstatus", "saksbehandler"):
        if key in checked:
            _limit(str(checked[key]), MAX_SHORT, f"arkivmelding.xml's {key}")
    if "tittel" in checked:
        _limit(str(checked["tittel"]), MAX_TITLE, "arkivmelding.xml's title")
    for key in ("saksaar", "journalaar"):
        if key in checked and not 1000 <= int(checked[key]) <= 9999:
            raise ForsendelseRejected(f"arkivmelding.xml's {key} {checked[key]} is not a year")
    extra = checked.pop("ekstraMetadata", None) or []
    unique: list[dict[str, str]] = []
    for item in extra:
        if item not in unique:
            unique.append(item)
    if len(unique) > MAX_EXTRA_METADATA:
        raise ForsendelseRejected(
            f"virksomhetsspesifikkeMetadata has {len(unique)} simple elements; SvarUt takes "
            f"at most {MAX_EXTRA_METADATA}"
        )
    for item in unique:
        _limit(item["key"], MAX_SHORT, "a virksomhetsspesifikkeMetadata element name")
        _limit(item["value"], 500, f"the virksomhetsspesifikkeMetadata value of {item['key']}")
    if unique:
        checked["ekstraMetadata"] = unique
    return checked


def _documents(
    journalpost: Journalpost, attachments: Sequence[Attachment], config: DPFConfig
) -> list[PlannedDocument]:
    by_name = {a.filename: a for a in attachments}
    if not journalpost.documents:
        raise ForsendelseRejected(
            "arkivmelding.xml names no documents (dokumentobjekt/referanseDokumentfil); "
            "SvarUt needs at least one"
        )
    planned: list[PlannedDocument] = []
    seen: set[str] = set()
    for ref in journalpost.documents:
        attachment = by_name.get(ref.filename)
        if attachment is None:
            raise ForsendelseRejected(
                f"arkivmelding.xml names {ref.filename!r}, which is not among the message's files"
            )
        check_filename(ref.filename)
        if ref.filename in seen:
            raise ForsendelseRejected(
                f"arkivmelding.xml names {ref.filename!r} twice; SvarUt needs unique file names"
            )
        seen.add(ref.filename)
        mime = (attachment.mime_type or "application/octet-stream").split(";")[0].strip()
        _limit(mime, 127, f"the MIME type of {ref.filename!r}")
        planned.append(
            PlannedDocument(attachment, ref.filename, mime, config.digital_only or mime == PDF)
        )
    ignored = sorted(set(by_name) - seen - {FILENAME})
    if ignored:
        log.warning("files not named in arkivmelding.xml are not sent to SvarUt", files=ignored)
    if not config.digital_only:
        if not any(d.mime_type == PDF for d in planned):
            raise ForsendelseRejected(
                "SvarUt must be able to print this forsendelse, but none of its documents is a "
                "PDF; send at least one PDF, or set digital_only to never print"
            )
        total = sum(d.attachment.size for d in planned)
        if total > config.printable_limit:
            raise ForsendelseRejected(
                f"the documents are {total} bytes; SvarUt prints forsendelser of at most "
                f"{config.printable_limit} bytes (set digital_only to send larger ones)"
            )
    return planned


def plan(message: OutgoingMessage, journalpost: Journalpost, config: DPFConfig) -> Plan:
    """The forsendelse for ``message``; raises :class:`ForsendelseRejected` saying why not."""
    title = journalpost.forsendelse_title
    if not title:
        raise ForsendelseRejected(
            "arkivmelding.xml's journalpost has no offentligTittel or tittel; SvarUt needs a title"
        )
    _limit(title, MAX_TITLE, "the title (offentligTittel)")
    _limit(message.message_id, MAX_SHORT, "the messageId (eksternReferanse)")
    receiver = organisation_number(message.receiver)
    sender = organisation_number(message.sender)
    documents = _documents(journalpost, message.attachments, config)
    receiver_name = (journalpost.receiver.name if journalpost.receiver else "") or receiver
    mottaker: dict[str, Any] = {
        "navn": _limit(receiver_name, MAX_SHORT, "the receiver's name"),
        "digitalId": receiver,
    }
    receiver_address = _address(journalpost.receiver)
    if receiver_address:
        mottaker["adresse"] = receiver_address
    forsendelse: dict[str, Any] = {
        "tittel": title,
        "eksternReferanse": message.message_id,
        "mottaker": mottaker,
        "avgivendeSystem": AVGIVENDE_SYSTEM,
        "kryptert": True,
        "kunDigitalLevering": config.digital_only,
        "utskriftskonfigurasjon": {"tosidig": True},
        "sikkerhetsniva": security_level(message.sbd),
    }
    reply_address = _address(journalpost.sender)
    if journalpost.sender and journalpost.sender.name and reply_address:
        forsendelse["svarSendesTil"] = {
            "navn": _limit(journalpost.sender.name, MAX_SHORT, "the sender's name"),
            "type": "ORGANISASJON",
            "digitalId": sender,
            "adresse": reply_address,
        }
    if (reference := receiver_ref(message.sbd)) is not None:
        forsendelse["svarPaForsendelseId"] = reference
    if (kind := forsendelse_type(message.sbd)) is not None:
        forsendelse["forsendelsestype"] = _limit(kind, MAX_SHORT, "dpf.forsendelseType")
    if config.konteringskode:
        forsendelse["konteringskode"] = config.konteringskode
    metadata = _metadata(journalpost.metadata)
    if metadata:
        forsendelse["metadataFraAvleverendeSystem"] = metadata
    by_name = {ref.filename: ref for ref in journalpost.documents}
    entries = []
    for document in documents:
        entry: dict[str, Any] = {"filnavn": document.filename, "mimeType": document.mime_type}
        if not document.printable:
            entry["skalEkskluderesFraUtskrift"] = True
        kind_of_document = by_name[document.filename].document_type
        if kind_of_document and len(kind_of_document) <= MAX_SHORT:
            entry["dokumentType"] = kind_of_document
        entries.append(entry)
    forsendelse["dokumenter"] = entries
    return Plan(forsendelse, documents)
