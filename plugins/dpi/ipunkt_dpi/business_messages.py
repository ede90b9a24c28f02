"""DPI's business messages ("forretningsmeldinger") and their SBD header, as typed models.

The rules are those of Digdir's published JSON schemas (``innbyggerpost_dpi_<type>_1_0``,
``commons``, ``sbdh``): the same required fields, lengths, patterns and enumerations, and no
property the schema does not list. Outgoing messages are built with them, so a message that
would break a schema is refused before it is sealed; receipts are read with them, so a receipt
that breaks its schema is refused. The tests check both against the published schemas.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

AUTHORITY: Final = "iso6523-actorid-upis"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
STANDARD = (
    "urn:fdc:digdir.no:2020:innbyggerpost:xsd::innbyggerpost"
    "##urn:fdc:digdir.no:2020:innbyggerpost:schema:{type}::1.0"
)
PROCESS = "urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:{type}:ver1.0"
CONVERSATION_ID = "ConversationId"

RECEIPTS = (
    "leveringskvittering",
    "mottakskvittering",
    "aapningskvittering",
    "varslingfeiletkvittering",
    "returpostkvittering",
    "feil",
)

IsoDateTime = Annotated[
    AwareDatetime,
    PlainSerializer(lambda v: v.isoformat(timespec="milliseconds"), return_type=str),
]
IsoDate = Annotated[date, PlainSerializer(lambda v: v.isoformat(), return_type=str)]


def standard(kind: str) -> str:
    """``documentIdentification.standard`` of a DPI message type."""
    return STANDARD.format(type=kind)


def process(kind: str) -> str:
    """The ConversationId scope's ``identifier`` of an outgoing DPI message type."""
    return PROCESS.format(type=kind)


class Strict(BaseModel):
    """No property the schema does not list (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Open(Strict):
    """A schema object without ``additionalProperties: false``: unknown properties pass."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


# --- the SBD header (sbdh.schema.json) ---------------------------------------------------


class PartnerIdentification(Strict):
    authority: str
    value: str


class Partner(Strict):
    identifier: PartnerIdentification

    @classmethod
    def organisation(cls, iso6523: str) -> Partner:
        return cls(identifier=PartnerIdentification(authority=AUTHORITY, value=iso6523))


class DocumentIdentification(Strict):
    standard: str
    type_version: str = Field(alias="typeVersion")
    instance_identifier: str = Field(alias="instanceIdentifier")
    type: str
    creation_date_and_time: IsoDateTime = Field(alias="creationDateAndTime")

    @field_validator("instance_identifier")
    @classmethod
    def _uuid(cls, value: str) -> str:
        uuid.UUID(value)
        return value


class ScopeInformation(Strict):
    expected_response_date_time: str | None = Field(default=None, alias="expectedResponseDateTime")


class Scope(Strict):
    type: str
    instance_identifier: str | None = Field(default=None, alias="instanceIdentifier")
    identifier: str | None = None
    scope_information: tuple[ScopeInformation, ...] | None = Field(
        default=None, alias="scopeInformation"
    )

    @field_validator("instance_identifier")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        if value is not None:
            uuid.UUID(value)
        return value


class BusinessScope(Strict):
    scope: tuple[Scope, ...]


class Header(Strict):
    header_version: str = Field(alias="headerVersion")
    sender: tuple[Partner] = Field(min_length=1, max_length=1)
    receiver: tuple[Partner] = Field(min_length=1, max_length=1)
    document_identification: DocumentIdentification = Field(alias="documentIdentification")
    business_scope: BusinessScope = Field(alias="businessScope")

    @property
    def message_id(self) -> str:
        return self.document_identification.instance_identifier

    @property
    def conversation_id(self) -> str | None:
        for scope in self.business_scope.scope:
            if scope.type == CONVERSATION_ID:
                return scope.instance_identifier
        return None


# --- commons.schema.json ------------------------------------------------------------------


class Virksomhetsidentifikator(Strict):
    authority: Literal["iso6523-actorid-upis"] = AUTHORITY
    value: str = Field(pattern=r"[0-9]{4}:\w{1,35}")


class Avsender(Strict):
    virksomhetsidentifikator: Virksomhetsidentifikator
    avsenderidentifikator: str | None = Field(default=None, max_length=100)
    faktura_referanse: str | None = Field(default=None, alias="fakturaReferanse", max_length=40)


class Virksomhetmottaker(Open):
    virksomhetsidentifikator: Virksomhetsidentifikator
    motakeridentifikator: str | None = Field(default=None, max_length=100)


class Personmottaker(Strict):
    postkasseadresse: str


class Dokumentpakkefingeravtrykk(Strict):
    digest_method: str = Field(default=SHA256, alias="digestMethod")
    digest_value: str = Field(alias="digestValue")


Repetisjoner = tuple[Annotated[int, Field(ge=0, le=25)], ...]


class Epostvarsel(Strict):
    epostadresse: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    varslingstekst: str = Field(min_length=1, max_length=500)
    repetisjoner: Repetisjoner = Field(min_length=1, max_length=10)


class Smsvarsel(Strict):
    mobiltelefonnummer: str = Field(min_length=8, max_length=20, pattern=r"^\+?[- _0-9]+$")
    varslingstekst: str = Field(min_length=1, max_length=160)
    repetisjoner: Repetisjoner = Field(min_length=1, max_length=10)


class Varsler(Open):
    epostvarsel: Epostvarsel | None = None
    smsvarsel: Smsvarsel | None = None


# --- outgoing: digital and utskrift -------------------------------------------------------


class Digital(Strict):
    kind: ClassVar[str] = "digital"

    avsender: Avsender
    mottaker: Personmottaker
    dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk
    maskinportentoken: str
    sikkerhetsnivaa: Literal[3, 4]
    virkningsdato: IsoDate | None = None
    virkningstidspunkt: IsoDateTime | None = None
    aapningskvittering: bool | None = None
    ikkesensitivtittel: str = Field(min_length=1, max_length=255)
    spraak: str = Field(min_length=2, max_length=2)
    varsler: Varsler | None = None


class AdresseInformasjon(Strict):
    """A postal address: Norwegian (postnummer and poststed) or foreign (land or landkode)."""

    navn: str | None = None
    adresselinje1: str | None = Field(default=None, max_length=100)
    adresselinje2: str | None = Field(default=None, max_length=100)
    adresselinje3: str | None = Field(default=None, max_length=100)
    adresselinje4: str | None = Field(default=None, max_length=100)
    postnummer: str | None = Field(default=None, pattern=r"^\d{4}$")
    poststed: str | None = Field(default=None, max_length=80)
    land: str | None = Field(default=None, max_length=80)
    landkode: str | None = Field(default=None, pattern=r"^[a-zA-Z]{2}$")

    @model_validator(mode="after")
    def _norwegian_or_foreign(self) -> AdresseInformasjon:
        named = self.navn is not None and self.adresselinje1 is not None
        norwegian = named and self.postnummer is not None and self.poststed is not None
        foreign = named and ((self.land is not None) != (self.landkode is not None))
        if norwegian == foreign:
            raise ValueError(
                "an address needs navn and adresselinje1, and then either postnummer and "
                "poststed (Norway) or one of land and landkode (abroad), not both"
            )
        return self


class Retur(Strict):
    mottaker: AdresseInformasjon
    returposthaandtering: Literal["DIREKTE_RETUR", "MAKULERING_MED_MELDING"]


class Utskrift(Strict):
    kind: ClassVar[str] = "utskrift"

    avsender: Avsender
    mottaker: AdresseInformasjon
    dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk
    maskinportentoken: str
    utskriftstype: Literal["SORT_HVIT", "FARGE"]
    retur: Retur
    posttype: Literal["A", "B"] | None = None


# --- incoming: receipts -------------------------------------------------------------------


class Kvittering(Strict):
    """leveringskvittering, mottakskvittering, aapningskvittering, returpostkvittering."""

    avsender: Avsender
    mottaker: Virksomhetmottaker
    tidspunkt: IsoDateTime


class Varslingfeiletkvittering(Kvittering):
    varslingskanal: Literal["epost", "sms"]
    beskrivelse: str | None = None


class Feil(Kvittering):
    feiltype: Literal["KLIENT", "SERVER"]
    detaljer: str | None = None


RECEIPT_MODELS: dict[str, type[Kvittering]] = {
    "leveringskvittering": Kvittering,
    "mottakskvittering": Kvittering,
    "aapningskvittering": Kvittering,
    "returpostkvittering": Kvittering,
    "varslingfeiletkvittering": Varslingfeiletkvittering,
    "feil": Feil,
}


@dataclass(frozen=True)
class BusinessDocument:
    """``{"standardBusinessDocument": {header, <type>: body}}``: what the JWS carries."""

    header: Header
    kind: str
    body: Strict

    def wire(self) -> dict[str, Any]:
        return {
            "standardBusinessDocument": {
                "standardBusinessDocumentHeader": self.header.wire(),
                self.kind: self.body.wire(),
            }
        }


class NotAReceipt(ValueError):
    """The payload is not a DPI receipt we know, or breaks its schema."""


def read_receipt(payload: Any) -> tuple[Header, str, Kvittering]:
    """Parse and check a receipt SBD (the JWS payload): its header, type and body."""
    if not isinstance(payload, dict) or set(payload) != {"standardBusinessDocument"}:
        raise NotAReceipt('the payload is not {"standardBusinessDocument": {...}}')
    document = payload["standardBusinessDocument"]
    if not isinstance(document, dict) or "standardBusinessDocumentHeader" not in document:
        raise NotAReceipt("the receipt has no standardBusinessDocumentHeader")
    header = Header.model_validate(document["standardBusinessDocumentHeader"])
    kind = header.document_identification.type
    model = RECEIPT_MODELS.get(kind)
    if model is None:
        raise NotAReceipt(f"{kind!r} is not a DPI receipt type ({', '.join(RECEIPTS)})")
    extra = set(document) - {"standardBusinessDocumentHeader", kind}
    if extra or kind not in document:
        raise NotAReceipt(
            f"a {kind} needs exactly the header and a {kind!r} body (found {sorted(document)})"
        )
    return header, kind, model.model_validate(document[kind])
