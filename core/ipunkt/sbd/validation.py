"""The constraints on an SBD, named and worded as the original's Bean Validation annotations.

:func:`header_violations` checks what the original checks when it binds the request body
(``@Valid``); :func:`business_violations` checks the business message once the channel is
known, as the original's validation groups do (``sikkerhetsnivaa`` is required for DPF, the
``digital`` type needs ``hoveddokument``...).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from ipunkt.sbd.document import HEADER_KEY, StandardBusinessDocument
from ipunkt.sbd.model import (
    NEXTMOVE_TYPES,
    ArkivmeldingMessage,
    DigitalDpvMessage,
    DpiDigitalMessage,
    DpiPrintMessage,
    EinnsynKvitteringMessage,
    InnsynskravMessage,
    PostAddress,
    PubliseringMessage,
    ScopeType,
)
from ipunkt.sbd.violations import Violation, path

NOT_NULL = "must not be null"
UUID_SCOPES = (ScopeType.CONVERSATION_ID, ScopeType.SENDER_REF)
ALLOWED_SCOPES = ", ".join(t.value for t in ScopeType)
NORWAY = ("norge", "norway")


def header_violations(sbd: StandardBusinessDocument, now: datetime) -> list[Violation]:
    """Violations of the header's rules; an empty list when the header is sound."""
    found: list[Violation] = []
    h = sbd.header
    base = HEADER_KEY
    _not_null(found, h.header_version, base, "headerVersion")
    for name, partners in (("sender", h.sender), ("receiver", h.receiver)):
        if partners and len(partners) > 1:
            found.append(Violation(path(base, name), "Size", "size must be between 0 and 1",
                                   len(partners)))
        for i, partner in enumerate(partners or []):
            if partner.identifier is None:
                _not_null(found, None, base, name, i, "identifier")
                continue
            _not_null(found, partner.identifier.value, base, name, i, "identifier", "value")
            _not_null(found, partner.identifier.authority, base, name, i, "identifier",
                      "authority")
            for j, contact in enumerate(partner.contact_information or []):
                _not_null(found, contact.contact, base, name, i, "contactInformation", j,
                          "contact")
    ident = h.document_identification
    if ident is None:
        _not_null(found, None, base, "documentIdentification")
    else:
        di = (base, "documentIdentification")
        _not_null(found, ident.standard, *di, "standard")
        _not_null(found, ident.type_version, *di, "typeVersion")
        if ident.instance_identifier is not None and not is_uuid(ident.instance_identifier):
            found.append(_not_uuid(path(*di, "instanceIdentifier"), ident.instance_identifier))
        if ident.type is None:
            _not_null(found, None, *di, "type")
        elif ident.type.strip().lower() not in NEXTMOVE_TYPES:
            found.append(Violation(path(*di, "type"), "MessageType",
                                   "Must be a NextMove message type", ident.type))
    if h.manifest is not None:
        items = h.manifest.manifest_item
        if not items:
            found.append(Violation(path(base, "manifest", "manifestItem"), "NotEmpty",
                                   "must not be empty", None))
        for i, item in enumerate(items or []):
            where = (base, "manifest", "manifestItem", i)
            _not_null(found, item.mime_type_qualifier_code, *where, "mimeTypeQualifierCode")
            _not_null(found, item.uniform_resource_identifier, *where,
                      "uniformResourceIdentifier")
    scopes = h.business_scope.scope if h.business_scope else None
    if h.business_scope is None:
        _not_null(found, None, base, "businessScope")
    elif not scopes:
        found.append(Violation(path(base, "businessScope", "scope"), "Size",
                               "size must be between 1 and 2147483647", 0))
    for i, scope in enumerate(scopes or []):
        where = (base, "businessScope", "scope", i)
        if scope.type is None:
            _not_null(found, None, *where, "type")
            continue
        kind = ScopeType._missing_(scope.type)
        if kind is None:
            found.append(Violation(
                path(*where, "type"), "OneOf",
                f"'{scope.type}' is not expected. Allowed values are: [{ALLOWED_SCOPES}]",
                scope.type,
            ))
        if (kind in UUID_SCOPES and scope.instance_identifier is not None
                and not is_uuid(scope.instance_identifier)):
            found.append(_not_uuid(path(*where, "instanceIdentifier"), scope.instance_identifier))
        for j, info in enumerate(scope.scope_information or []):
            expected = info.expected_response_date_time
            if expected is not None and expected <= now:
                found.append(Violation(
                    path(*where, "scopeInformation", j, "expectedResponseDateTime"), "Future",
                    "must be a future date", _format(expected),
                ))
    conversation = h.scope(ScopeType.CONVERSATION_ID) if scopes else None
    if scopes and conversation is None:
        found.append(Violation(path(base, "businessScope", "scope"), "ConversationId",
                               "must contain a ConversationId scope naming the process", None))
    elif conversation is not None and not conversation.identifier:
        index = (scopes or []).index(conversation)
        _not_null(found, None, base, "businessScope", "scope", index, "identifier")
    return found


def business_violations(sbd: StandardBusinessDocument, service: str) -> list[Violation]:
    """Violations of the business message's rules for the channel that will carry it."""
    found: list[Violation] = []
    body = sbd.body
    key = sbd.body_key
    if body is None:
        found.append(Violation(key, "NotNull", NOT_NULL, None))
        return found
    if isinstance(body, ArkivmeldingMessage):
        if service == "DPF":
            _not_null(found, body.sikkerhetsnivaa, key, "sikkerhetsnivaa")
    elif isinstance(body, DpiDigitalMessage):
        _not_null(found, body.sikkerhetsnivaa, key, "sikkerhetsnivaa")
        _not_null(found, body.hoveddokument, key, "hoveddokument")
        _not_null(found, body.tittel, key, "tittel")
        _not_null(found, body.spraak, key, "spraak")
        info = body.digital_post_info
        if info is None:
            _not_null(found, None, key, "digitalPostInfo")
        else:
            _not_null(found, info.virkningsdato, key, "digitalPostInfo", "virkningsdato")
            _not_null(found, info.aapningskvittering, key, "digitalPostInfo", "aapningskvittering")
    elif isinstance(body, DigitalDpvMessage):
        for name in ("tittel", "sammendrag", "innhold"):
            _not_null(found, getattr(body, name), key, name)
    elif isinstance(body, DpiPrintMessage):
        _not_null(found, body.hoveddokument, key, "hoveddokument")
        _address(found, body.mottaker, key, "mottaker")
        if body.retur is None:
            _not_null(found, None, key, "retur")
        else:
            _address(found, body.retur.mottaker, key, "retur", "mottaker")
            _not_null(found, body.retur.returhaandtering, key, "retur", "returhaandtering")
    elif isinstance(body, InnsynskravMessage):
        _not_null(found, body.orgnr, key, "orgnr")
        _not_null(found, body.epost, key, "epost")
    elif isinstance(body, PubliseringMessage):
        _not_null(found, body.orgnr, key, "orgnr")
    elif isinstance(body, EinnsynKvitteringMessage):
        _not_null(found, body.dokument_id, key, "dokumentId")
        _not_null(found, body.status, key, "status")
        _not_null(found, body.referanse_type, key, "referanseType")
    return found


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def _address(found: list[Violation], address: PostAddress | None, *where: str) -> None:
    """A postal address: name and first line always, post code and place in Norway."""
    if address is None:
        _not_null(found, None, *where)
        return
    _not_null(found, address.navn or None, *where, "navn")
    _not_null(found, address.adresselinje1 or None, *where, "adresselinje1")
    if address.land is None or address.land.strip().lower() in NORWAY:
        _not_null(found, address.postnummer or None, *where, "postnummer")
        _not_null(found, address.poststed or None, *where, "poststed")


def _not_null(found: list[Violation], value: Any, *where: str | int) -> None:
    if value is None:
        found.append(Violation(path(*where), "NotNull", NOT_NULL, None))


def _not_uuid(field: str, value: str) -> Violation:
    return Violation(field, "UUID", f"'{value}' is not a UUID.", value)


def _format(value: Any) -> Any:
    from ipunkt.sbd.times import format_datetime

    return format_datetime(value) if isinstance(value, datetime) else value



