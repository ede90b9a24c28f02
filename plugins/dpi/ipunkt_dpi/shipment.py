"""From a Next Move ``digital`` or ``print`` message to what DPI sends: the plan of a shipment.

The rules and defaults are the original's (``MeldingsformidlerRequestFactory``,
``ShipmentFactory``, ``SDPBuilder``): the mailbox (or print) provider's organisation number,
certificate and the citizen's postbox address come from the Service Registry record; a document
without a title is titled "Missing title"; notifications go out only when the record has the
address and the message has the text, repeated on day 0 and 7; ``virkningsdato`` becomes
``virkningstidspunkt`` at midnight in Norway (now when the message has none); print is black and
white, B post and returned directly unless the message says otherwise. Everything that can be
checked is checked here, before the (expensive) sealing, and a problem is a
:class:`~ipunkt.plugin.PermanentError` that names the field.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from cryptography import x509
from ipunkt.package.errors import CertificateProblem
from ipunkt.package.manifest import ManifestError, SdpDocument, SdpManifest
from ipunkt.package.trust import check_rsa, check_usage, check_validity
from ipunkt.plugin import Attachment, OutgoingMessage, PermanentError
from pydantic import ValidationError

from ipunkt_dpi.business_messages import (
    CONVERSATION_ID,
    AdresseInformasjon,
    Avsender,
    BusinessDocument,
    BusinessScope,
    Digital,
    DocumentIdentification,
    Dokumentpakkefingeravtrykk,
    Epostvarsel,
    Header,
    Partner,
    Personmottaker,
    Retur,
    Scope,
    ScopeInformation,
    Smsvarsel,
    Utskrift,
    Varsler,
    Virksomhetsidentifikator,
    process,
    standard,
)

NORWAY = ZoneInfo("Europe/Oslo")
MISSING_TITLE = "Missing title"
REPETITIONS = (0, 7)
NORWAY_NAMES = ("norge", "norway", "no", "nor")
"""What the Service Registry counts as Norway (its ``PostAddress.isNorge``)."""
KINDS = {"digital": "digital", "print": "utskrift"}
"""Next Move message type -> DPI business message type."""


@dataclass(frozen=True)
class Shipment:
    """A checked plan: what goes in the package, to whom it is sealed, and the business
    message waiting for the package's fingerprint and the Maskinporten token."""

    kind: str
    """``digital`` or ``utskrift``."""
    header: Header
    provider: str
    """The mailbox or print provider's organisation number (the SBD's receiver)."""
    recipient: x509.Certificate
    """The provider's certificate: the package is sealed to it."""
    manifest: SdpManifest
    documents: tuple[Attachment, ...]
    consumer: str
    """The organisation the message is sent for (the avsender): the Maskinporten token's
    ``consumer_org`` when it is not our own, as the original asks for it."""
    finish: Callable[[Dokumentpakkefingeravtrykk, str], Digital | Utskrift]

    def business_document(self, fingerprint: bytes, token: str) -> BusinessDocument:
        """The SBD to sign, once the package's SHA-256 and the token are known."""
        body = self.finish(
            Dokumentpakkefingeravtrykk(digestValue=base64.b64encode(fingerprint).decode()), token
        )
        return BusinessDocument(self.header, self.kind, body)


def _refuse(message: str) -> PermanentError:
    return PermanentError(f"DPI: {message}")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _section(mapping: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    value = (mapping or {}).get(key)
    return value if isinstance(value, Mapping) else {}


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors()
    )


def kind_of(message: OutgoingMessage) -> str:
    """``digital`` or ``utskrift``, from the SBD's business message."""
    header = _section(message.sbd, "standardBusinessDocumentHeader")
    declared = _text(_section(header, "documentIdentification").get("type"))
    candidates = [declared] if declared else [k for k in KINDS if k in message.sbd]
    for candidate in candidates:
        if candidate and candidate.lower() in KINDS:
            return KINDS[candidate.lower()]
    raise _refuse(
        f"the message type {declared or message.document_type!r} is not one DPI carries "
        "(digital, print)"
    )


def _organisations(sender: str) -> tuple[str, str | None]:
    """``(icd:org, icd:part org)`` from ``org``, ``icd:org`` or ``icd:org:partOrg``: the
    integration point's organisation sends (the SBD's sender, whose key signs), on behalf of
    the part organisation when there is one (the business message's ``avsender``)."""
    parts = sender.strip().split(":")
    if len(parts) == 1:
        return f"0192:{parts[0]}", None
    icd, org, *rest = parts
    return f"{icd}:{org}", (f"{icd}:{rest[0]}" if rest else None)


def _certificate(record: Mapping[str, Any]) -> x509.Certificate:
    text = _text(record.get("pemCertificate"))
    if text is None:
        raise _refuse("the receiver's service record has no certificate (pemCertificate)")
    if "-----BEGIN" not in text:
        text = f"-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----"
    try:
        certificate = x509.load_pem_x509_certificate(text.encode())
    except ValueError as exc:
        raise _refuse(f"the service record's certificate cannot be read: {exc}") from exc
    try:
        check_validity(certificate)
        check_rsa(certificate)
        check_usage(certificate, ("key_encipherment",))
    except CertificateProblem as exc:
        raise _refuse(f"the provider's certificate cannot be used: {exc}") from exc
    return certificate


def _provider(record: Mapping[str, Any], kind: str) -> str:
    provider = _text(record.get("orgnrPostkasse"))
    if provider is None:
        what = "print provider" if kind == "utskrift" else "mailbox provider"
        raise _refuse(f"the service record does not name the {what} (orgnrPostkasse)")
    return provider.split(":")[-1]


def _select_documents(
    attachments: Sequence[Attachment], main_name: str | None, metadata: Mapping[str, str]
) -> tuple[Attachment, list[Attachment], dict[str, Attachment]]:
    by_name = {a.filename: a for a in attachments}
    main = next((a for a in attachments if a.primary), None)
    if main is None and main_name is not None:
        main = by_name.get(main_name)
    if main is None:
        raise _refuse("the message has no main document (hoveddokument)")
    data: dict[str, Attachment] = {}
    for document, metadata_name in metadata.items():
        if document not in by_name:
            raise _refuse(f"metadataFiler names {document!r}, which is not attached")
        if metadata_name not in by_name:
            raise _refuse(
                f"metadata document {metadata_name} specified for {document}, but is not attached"
            )
        data[document] = by_name[metadata_name]
    metadata_names = set(metadata.values())
    others = [a for a in attachments if a is not main and a.filename not in metadata_names]
    return main, others, data


def _sdp_document(document: Attachment, lang: str, data: Attachment | None) -> SdpDocument:
    return SdpDocument(
        href=document.filename,
        mime=document.mime_type,
        title=_text(document.title) or MISSING_TITLE,
        lang=lang,
        metadata_href=data.filename if data else None,
        metadata_mime=data.mime_type if data else None,
    )


def _address(given: Mapping[str, Any]) -> AdresseInformasjon:
    """The original's address rules: Norwegian addresses keep postnummer and poststed;
    foreign ones fold them into the first free address line and name the country."""
    lines = [_text(given.get(f"adresselinje{n}")) for n in range(1, 5)]
    postnummer, poststed = _text(given.get("postnummer")), _text(given.get("poststed"))
    land = _text(given.get("land"))
    common = {"navn": _text(given.get("navn")), "adresselinje1": lines[0]}
    if land is None or land.lower() in NORWAY_NAMES:
        return AdresseInformasjon(
            **common,
            adresselinje2=lines[1],
            adresselinje3=lines[2],
            adresselinje4=lines[3],
            postnummer=postnummer,
            poststed=poststed,
        )
    postal = " ".join(p for p in (postnummer, poststed) if p) or None
    if postal is not None:
        if lines[1] is None:
            lines[1] = postal
        elif lines[2] is None:
            lines[2] = postal
        elif lines[3] is None:
            lines[3] = postal
        else:
            lines[3] = f"{lines[3]} {postal}"
    return AdresseInformasjon(
        **common, adresselinje2=lines[1], adresselinje3=lines[2], adresselinje4=lines[3], land=land
    )


def _with_record_defaults(given: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """The original's ``setReceiverDefaults``: each field the message leaves empty comes from
    the Service Registry's address (``street`` holds the lines, separated by ``;``)."""
    merged = {key: _text(value) for key, value in given.items()}
    if not merged.get("navn"):
        merged["navn"] = _text(record.get("name"))
    if not merged.get("adresselinje1"):
        lines = str(record.get("street") or "").split(";")[:4]
        for n, line in enumerate(lines, start=1):
            merged[f"adresselinje{n}"] = _text(line)
    for key, source in (
        ("postnummer", "postalCode"),
        ("poststed", "postalArea"),
        ("land", "country"),
    ):
        if not merged.get(key):
            merged[key] = _text(record.get(source))
    return merged


def _choose_address(
    given: Mapping[str, Any], record: Mapping[str, Any], what: str
) -> AdresseInformasjon:
    try:
        return _address(_with_record_defaults(given, record))
    except ValidationError as exc:
        raise _refuse(f"{what}: {_describe(exc)}") from exc


def _enum(value: Any) -> str | None:
    text = _text(value)
    return text.upper() if text else None


def _header(
    message: OutgoingMessage, kind: str, sender: str, provider: str, now: datetime
) -> Header:
    try:
        uuid.UUID(message.message_id)
        uuid.UUID(message.conversation_id)
    except ValueError as exc:
        raise _refuse("messageId and conversationId must be UUIDs") from exc
    return Header(
        headerVersion="1.0",
        sender=(Partner.organisation(sender),),
        receiver=(Partner.organisation(f"0192:{provider}"),),
        documentIdentification=DocumentIdentification(
            standard=standard(kind),
            typeVersion="1.0",
            instanceIdentifier=message.message_id,
            type=kind,
            creationDateAndTime=now,
        ),
        businessScope=BusinessScope(
            scope=(
                Scope(
                    type=CONVERSATION_ID,
                    instanceIdentifier=message.conversation_id,
                    identifier=process(kind),
                    scopeInformation=(
                        ScopeInformation(
                            expectedResponseDateTime=message.expires_at.astimezone(
                                NORWAY
                            ).isoformat(timespec="milliseconds")
                        ),
                    ),
                ),
            )
        ),
    )


def _virkningstidspunkt(info: Mapping[str, Any], now: datetime) -> datetime:
    given = _text(info.get("virkningsdato"))
    if given is None:
        return now
    try:
        day = date.fromisoformat(given[:10])
    except ValueError as exc:
        raise _refuse(f"digitalPostInfo.virkningsdato {given!r} is not a date") from exc
    return datetime.combine(day, time(0), NORWAY)


def plan(
    message: OutgoingMessage,
    *,
    organisation: str | None = None,
    language: str = "NO",
    size_limit: int | None = None,
    now: datetime | None = None,
    print_provider: Mapping[str, Any] | None = None,
) -> Shipment:
    """Check ``message`` and plan its shipment; raises PermanentError naming what is wrong.

    ``organisation`` (ours) is the sender when the message names none. ``print_provider`` is
    the record (``orgnrPostkasse``, ``pemCertificate``) a ``print`` message without a receiver
    goes by, as the original takes the contact register's print provider for it."""
    kind = kind_of(message)
    when = (now or datetime.now(NORWAY)).astimezone(NORWAY)
    record = message.service_record
    if not record and kind == "utskrift" and not message.receiver:
        if not print_provider:
            raise _refuse(
                "a print message without a receiver needs the print provider: configure "
                "channels.dpi.print_provider and print_certificate"
            )
        record = print_provider
    if not record:
        raise _refuse("the message has no service record for its receiver")
    body = _section(message.sbd, "digital" if kind == "digital" else "print")
    given = message.sender.strip() or organisation
    if not given:
        raise _refuse("the message names no sender")
    sender, on_behalf_of = _organisations(given)
    avsender_organisation = on_behalf_of or sender
    provider = _provider(record, kind)
    recipient = _certificate(record)
    total = sum(a.size for a in message.attachments)
    if size_limit is not None and total > size_limit:
        raise _refuse(f"the files take {total} bytes; DPI takes at most {size_limit}")
    spraak = _text(body.get("spraak")) or _text(record.get("spraak")) or language
    metadata = (
        {str(k): str(v) for k, v in _section(body, "metadataFiler").items() if v is not None}
        if kind == "digital"
        else {}
    )
    main, others, data = _select_documents(
        message.attachments, _text(body.get("hoveddokument")), metadata
    )
    try:
        avsender = Avsender(
            virksomhetsidentifikator=Virksomhetsidentifikator(value=avsender_organisation),
            avsenderidentifikator=_text(body.get("avsenderId")),
            fakturaReferanse=_text(body.get("fakturaReferanse")),
        )
    except ValidationError as exc:
        raise _refuse(f"avsender: {_describe(exc)}") from exc
    postkasseadresse = _text(record.get("postkasseAdresse")) if kind == "digital" else None
    if kind == "digital" and postkasseadresse is None:
        raise _refuse("the service record has no postbox address (postkasseAdresse)")
    try:
        manifest = SdpManifest(
            sender=avsender_organisation,
            main_document=_sdp_document(main, spraak, data.get(main.filename)),
            attachments=tuple(_sdp_document(a, spraak, data.get(a.filename)) for a in others),
            postkasseadresse=postkasseadresse,
            avsenderidentifikator=avsender.avsenderidentifikator,
            fakturareferanse=avsender.faktura_referanse,
        )
    except ManifestError as exc:
        raise _refuse(f"manifest: {exc}") from exc
    documents: list[Attachment] = []
    for document in (main, *others):
        documents.append(document)
        if document.filename in data:
            documents.append(data[document.filename])
    header = _header(message, kind, sender, provider, when)

    finish: Callable[[Dokumentpakkefingeravtrykk, str], Digital | Utskrift]
    if kind == "digital":
        finish = _digital(body, record, avsender, postkasseadresse or "", spraak, when)
    else:
        finish = _utskrift(body, record, avsender)
    consumer = avsender_organisation.split(":")[-1]
    return Shipment(kind, header, provider, recipient, manifest, tuple(documents), consumer, finish)


def _digital(
    body: Mapping[str, Any],
    record: Mapping[str, Any],
    avsender: Avsender,
    postkasseadresse: str,
    spraak: str,
    now: datetime,
) -> Callable[[Dokumentpakkefingeravtrykk, str], Digital]:
    info = _section(body, "digitalPostInfo")
    notices = _section(body, "varsler")
    email_text, sms_text = _text(notices.get("epostTekst")), _text(notices.get("smsTekst"))
    email, mobile = _text(record.get("epostAdresse")), _text(record.get("mobilnummer"))
    epostvarsel = smsvarsel = None
    try:
        if email and email_text:
            epostvarsel = Epostvarsel(
                epostadresse=email, varslingstekst=email_text, repetisjoner=REPETITIONS
            )
    except ValidationError as exc:
        raise _refuse(f"varsler.epostvarsel: {_describe(exc)}") from exc
    try:
        if mobile and sms_text:
            smsvarsel = Smsvarsel(
                mobiltelefonnummer=mobile, varslingstekst=sms_text, repetisjoner=REPETITIONS
            )
    except ValidationError as exc:
        raise _refuse(f"varsler.smsvarsel: {_describe(exc)}") from exc
    varsler = Varsler(epostvarsel=epostvarsel, smsvarsel=smsvarsel)
    level = body.get("sikkerhetsnivaa")
    title = _text(body.get("tittel"))
    fields: dict[str, Any] = {
        "avsender": avsender,
        "mottaker": Personmottaker(postkasseadresse=postkasseadresse),
        "sikkerhetsnivaa": int(str(level)) if str(level).strip().isdigit() else level,
        "virkningstidspunkt": _virkningstidspunkt(info, now),
        "aapningskvittering": bool(info.get("aapningskvittering") or False),
        "ikkesensitivtittel": title,
        "spraak": spraak,
        "varsler": varsler,
    }
    placeholder = Dokumentpakkefingeravtrykk(digestValue="")
    try:
        Digital(**fields, dokumentpakkefingeravtrykk=placeholder, maskinportentoken="")
    except ValidationError as exc:
        raise _refuse(f"digital: {_describe(exc)}") from exc

    def finish(fingerprint: Dokumentpakkefingeravtrykk, token: str) -> Digital:
        return Digital(**fields, dokumentpakkefingeravtrykk=fingerprint, maskinportentoken=token)

    return finish


def _utskrift(
    body: Mapping[str, Any], record: Mapping[str, Any], avsender: Avsender
) -> Callable[[Dokumentpakkefingeravtrykk, str], Utskrift]:
    retur = _section(body, "retur")
    fields: dict[str, Any] = {
        "avsender": avsender,
        "mottaker": _choose_address(
            _section(body, "mottaker"), _section(record, "postAddress"), "print.mottaker"
        ),
        "utskriftstype": "FARGE" if _enum(body.get("utskriftsfarge")) == "FARGE" else "SORT_HVIT",
        "retur": Retur(
            mottaker=_choose_address(
                _section(retur, "mottaker"),
                _section(record, "returnAddress"),
                "print.retur.mottaker",
            ),
            returposthaandtering="MAKULERING_MED_MELDING"
            if _enum(retur.get("returhaandtering")) == "MAKULERING_MED_MELDING"
            else "DIREKTE_RETUR",
        ),
        "posttype": "A" if _enum(body.get("posttype")) == "A_PRIORITERT" else "B",
    }

    def finish(fingerprint: Dokumentpakkefingeravtrykk, token: str) -> Utskrift:
        return Utskrift(**fields, dokumentpakkefingeravtrykk=fingerprint, maskinportentoken=token)

    return finish
