"""The StandardBusinessDocument (SBD) JSON model: the header and every business message.

Field names and their order are the original's (Jackson writes them in this order). Reading is
liberal: unknown properties are ignored, an explicit ``null`` is the same as an absent field,
numbers are accepted where text is meant, enum values match case-insensitively. Writing omits
absent fields, as the original's ``NON_NULL`` inclusion does, except where the original always
writes a value (empty maps such as ``metadataFiler``, the sender and receiver arrays).
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from ipunkt.sbd.times import (
    TimeFormatError,
    format_date,
    format_datetime,
    parse_date,
    parse_datetime,
)


def _read_datetime(value: Any) -> Any:
    """ISO-8601 text, or seconds since the epoch (as Jackson reads a number)."""
    if isinstance(value, str):
        return parse_datetime(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise TimeFormatError(f"{value} seconds since 1970 is no time") from None
    return value


def _read_date(value: Any) -> Any:
    if isinstance(value, str):
        return parse_date(value)
    if isinstance(value, datetime):
        return value.date()
    return value


DateTime = Annotated[
    datetime,
    BeforeValidator(_read_datetime),
    PlainSerializer(format_datetime, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Date = Annotated[
    date,
    BeforeValidator(_read_date),
    PlainSerializer(format_date, return_type=str),
    WithJsonSchema({"type": "string", "format": "date"}),
]


class Node(BaseModel):
    """Base of every SBD object: camelCase on the wire, liberal reading."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        coerce_numbers_to_str=True,
        validate_assignment=False,
    )


class WireEnum(enum.StrEnum):
    """An enum read by constant name or wire value, case-insensitively."""

    @classmethod
    def _missing_(cls, value: object) -> WireEnum | None:
        if isinstance(value, str):
            return _lookup(cls).get(value.strip().lower())  # type: ignore[return-value]
        return None


_LOOKUPS: dict[type, dict[str, enum.Enum]] = {}


def _lookup(cls: type[enum.Enum]) -> dict[str, enum.Enum]:
    """Each member by its lowercased value and name (built once per enum)."""
    table = _LOOKUPS.get(cls)
    if table is None:
        table = {}
        for member in cls:
            table[member.name.lower()] = member
            table[str(member.value).lower()] = member
        _LOOKUPS[cls] = table
    return table


class ScopeType(WireEnum):
    JOURNALPOST_ID = "JournalpostId"
    CONVERSATION_ID = "ConversationId"
    PARENT_ID = "ParentId"
    SENDER_REF = "SenderRef"
    RECEIVER_REF = "ReceiverRef"
    MESSAGE_CHANNEL = "MessageChannel"


# --- header -------------------------------------------------------------------------------


class PartnerIdentification(Node):
    value: str | None = None
    authority: str | None = None


class ContactInformation(Node):
    contact: str | None = None
    email_address: str | None = None
    fax_number: str | None = None
    telephone_number: str | None = None
    contact_type_identifier: str | None = None


class Partner(Node):
    identifier: PartnerIdentification | None = None
    contact_information: list[ContactInformation] | None = None


class DocumentIdentification(Node):
    standard: str | None = None
    type_version: str | None = None
    instance_identifier: str | None = None
    type: str | None = None
    multiple_type: bool | None = None
    creation_date_and_time: DateTime | None = None


class ManifestItem(Node):
    mime_type_qualifier_code: str | None = None
    uniform_resource_identifier: str | None = None
    description: str | None = None
    language_code: str | None = None


class Manifest(Node):
    number_of_items: int | None = None
    manifest_item: list[ManifestItem] | None = None


class CorrelationInformation(Node):
    requesting_document_creation_date_time: DateTime | None = None
    requesting_document_instance_identifier: str | None = None
    expected_response_date_time: DateTime | None = None


class Scope(Node):
    type: str | None = None
    instance_identifier: str | None = None
    identifier: str | None = None
    scope_information: list[CorrelationInformation] | None = None


class BusinessScope(Node):
    scope: list[Scope] | None = None


class Header(Node):
    header_version: str | None = None
    sender: list[Partner] | None = None
    receiver: list[Partner] | None = None
    document_identification: DocumentIdentification | None = None
    manifest: Manifest | None = None
    business_scope: BusinessScope | None = None

    def scope(self, kind: ScopeType) -> Scope | None:
        """The first scope of this type (named exactly, or in any case)."""
        scopes = self.business_scope.scope if self.business_scope else None
        wanted = kind._value_
        for scope in scopes or ():
            named = scope.type
            if named == wanted or (named is not None and ScopeType._missing_(named) is kind):
                return scope
        return None


# --- business messages ----------------------------------------------------------------------


class VarselType(WireEnum):
    VARSEL_DPV_UTEN_REVARSEL = "VarselDPVUtenRevarsel"
    VARSEL_DPV_MED_REVARSEL = "VarselDPVMedRevarsel"


class VarselTransportType(WireEnum):
    EPOST = "Epost"
    SMS = "SMS"
    EPOSTOGSMS = "EpostOgSMS"


class PrintColor(WireEnum):
    SORT_HVIT = "SORT_HVIT"
    FARGE = "FARGE"


class PostalCategory(WireEnum):
    A_PRIORITERT = "A_PRIORITERT"
    B_OEKONOMI = "B_OEKONOMI"


class ReturnHandling(WireEnum):
    DIREKTE_RETUR = "DIREKTE_RETUR"
    MAKULERING_MED_MELDING = "MAKULERING_MED_MELDING"


class EinnsynType(WireEnum):
    INNSYNSKRAV = "innsynskrav"
    PUBLISERING = "publisering"


class DeliveryStatus(WireEnum):
    """The ``status`` business message's value (the receiving integration point's receipt)."""

    OPPRETTET = "OPPRETTET"
    SENDT = "SENDT"
    MOTTATT = "MOTTATT"
    LEVERT = "LEVERT"
    LEST = "LEST"
    FEIL = "FEIL"
    ANNET = "ANNET"
    INNKOMMENDE_MOTTATT = "INNKOMMENDE_MOTTATT"
    INNKOMMENDE_LEVERT = "INNKOMMENDE_LEVERT"
    LEVETID_UTLOPT = "LEVETID_UTLOPT"


class DpvSettings(Node):
    varsel_type: VarselType | None = None
    varsel_transport_type: VarselTransportType | None = None
    varsel_tekst: str | None = None
    taushetsbelagt_varsel_tekst: str | None = None
    dager_til_svarfrist: int | None = None


class DpfSettings(Node):
    forsendelse_type: str | None = None


class DigitalPostInfo(Node):
    virkningsdato: Date | None = None
    aapningskvittering: bool | None = None


class DpiNotification(Node):
    epost_tekst: str | None = None
    sms_tekst: str | None = None


class PostAddress(Node):
    navn: str | None = None
    adresselinje1: str | None = None
    adresselinje2: str | None = None
    adresselinje3: str | None = None
    adresselinje4: str | None = None
    postnummer: str | None = None
    poststed: str | None = None
    land: str | None = None


class MailReturn(Node):
    mottaker: PostAddress | None = None
    returhaandtering: ReturnHandling | None = None


class KvitteringStatusMessage(Node):
    code: str | None = None
    text: str | None = None


def _empty_map_if_null(value: Any) -> Any:
    return {} if value is None else value


class BusinessMessage(Node):
    """Base of the business messages; ``type_name`` is the SBD key and the header's type."""

    type_name: ClassVar[str]
    standard: ClassVar[str]
    receipt: ClassVar[bool] = False
    files_required: ClassVar[bool] = True

    @property
    def primary_document(self) -> str | None:
        """The file named as ``hoveddokument``, if this type has one."""
        value = getattr(self, "hoveddokument", None)
        return value if isinstance(value, str) else None


class ArkivmeldingMessage(BusinessMessage):
    type_name = "arkivmelding"
    standard = "urn:no:difi:arkivmelding:xsd::arkivmelding"

    sikkerhetsnivaa: int | None = None
    hoveddokument: str | None = None
    dpv: DpvSettings | None = None
    dpf: DpfSettings | None = None


class ArkivmeldingKvitteringMessage(BusinessMessage):
    type_name = "arkivmelding_kvittering"
    standard = "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering"
    receipt = True
    files_required = False

    hoveddokument: str | None = None
    receipt_type: str | None = None
    related_to_message_id: str | None = None
    messages: list[KvitteringStatusMessage] | None = None


class AvtaltMessage(BusinessMessage):
    type_name = "avtalt"
    standard = "urn:no:difi:avtalt:xsd::avtalt"
    files_required = False

    hoveddokument: str | None = None
    identifier: str | None = None
    content: Any = None


class DpiDigitalMessage(BusinessMessage):
    type_name = "digital"
    standard = "urn:no:difi:digitalpost:xsd:digital::digital"

    sikkerhetsnivaa: int | None = None
    hoveddokument: str | None = None
    avsender_id: str | None = None
    faktura_referanse: str | None = None
    tittel: str | None = None
    spraak: str | None = None
    digital_post_info: DigitalPostInfo | None = None
    varsler: DpiNotification | None = None
    metadata_filer: Annotated[dict[str, str], BeforeValidator(_empty_map_if_null)] = Field(
        default_factory=dict
    )


class DigitalDpvMessage(BusinessMessage):
    type_name = "digital_dpv"
    standard = "urn:no:difi:digitalpost:xsd:digital::digital_dpv"

    hoveddokument: str | None = None
    tittel: str | None = None
    sammendrag: str | None = None
    innhold: str | None = None
    dpv: DpvSettings | None = None


class DpiPrintMessage(BusinessMessage):
    type_name = "print"
    standard = "urn:no:difi:digitalpost:xsd:fysisk::print"

    hoveddokument: str | None = None
    avsender_id: str | None = None
    faktura_referanse: str | None = None
    mottaker: PostAddress | None = None
    utskriftsfarge: PrintColor | None = None
    posttype: PostalCategory | None = None
    retur: MailReturn | None = None
    printinstruksjoner: Annotated[dict[str, str], BeforeValidator(_empty_map_if_null)] = Field(
        default_factory=dict
    )


class InnsynskravMessage(BusinessMessage):
    type_name = "innsynskrav"
    standard = "urn:no:difi:einnsyn:xsd::innsynskrav"

    hoveddokument: str | None = None
    orgnr: str | None = None
    epost: str | None = None


class PubliseringMessage(BusinessMessage):
    type_name = "publisering"
    standard = "urn:no:difi:einnsyn:xsd::publisering"

    hoveddokument: str | None = None
    orgnr: str | None = None


class EinnsynKvitteringMessage(BusinessMessage):
    type_name = "einnsyn_kvittering"
    standard = "urn:no:difi:einnsyn:xsd::einnsyn_kvittering"
    receipt = True
    files_required = False

    hoveddokument: str | None = None
    dokument_id: str | None = None
    status: str | None = None
    referanse_type: EinnsynType | None = None


class StatusMessage(BusinessMessage):
    type_name = "status"
    standard = "urn:no:difi:eformidling:xsd::status"
    files_required = False

    hoveddokument: str | None = None
    status: DeliveryStatus | None = None
    description: str | None = None
    """Why, for a FEIL: ipunkt says why it refused a message (the original sends no reason)."""


MESSAGE_TYPES: dict[str, type[BusinessMessage]] = {
    cls.type_name: cls
    for cls in (
        StatusMessage,
        ArkivmeldingMessage,
        ArkivmeldingKvitteringMessage,
        AvtaltMessage,
        DpiDigitalMessage,
        DigitalDpvMessage,
        DpiPrintMessage,
        InnsynskravMessage,
        PubliseringMessage,
        EinnsynKvitteringMessage,
    )
}
"""The business-message types, by the name used as SBD key and ``documentIdentification.type``."""

NEXTMOVE_TYPES: tuple[str, ...] = (
    "status", "feil", "arkivmelding", "arkivmelding_kvittering", "avtalt", "fiksio", "digital",
    "digital_dpv", "print", "innsynskrav", "publisering", "einnsyn_kvittering",
)
"""Every type name the original accepts as ``documentIdentification.type``."""


def message_type(name: str | None) -> type[BusinessMessage] | None:
    """The business-message class for a type name (case-insensitive, as the original)."""
    if name is None:
        return None
    return MESSAGE_TYPES.get(name.strip().lower())
